//! Problems found in a config or profile file, each placed at `file:line:col`.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in a file: a message and, where known, the byte span it is about.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub span: Option<Range<usize>>,
    pub message: String,
}

/// Every problem found in one file, rendered as `file:line:col: message` lines.
#[derive(Debug, Clone)]
pub struct Problems {
    path: PathBuf,
    src: String,
    items: Vec<Problem>,
}

impl Problems {
    /// An empty list for `path`, whose text is `src` (used to turn spans into line/column).
    pub fn new(path: &Path, src: &str) -> Self {
        Problems {
            path: path.to_path_buf(),
            src: src.to_string(),
            items: Vec::new(),
        }
    }

    /// Records a problem at `span` (or at the top of the file when unknown).
    pub fn push(&mut self, span: Option<Range<usize>>, message: impl Into<String>) {
        self.items.push(Problem {
            span,
            message: message.into(),
        });
    }

    /// Records a `toml` parse or deserialisation error with its position.
    pub fn push_toml(&mut self, e: &toml::de::Error) {
        self.push(e.span(), e.message().trim().to_string());
    }

    /// True when nothing was found.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// True when a problem with exactly this message was recorded.
    pub fn has_message(&self, msg: &str) -> bool {
        self.items.iter().any(|p| p.message == msg)
    }

    /// Number of problems.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// All problems in file order, one `file:line:col: message` line each.
    pub fn lines(&self) -> Vec<String> {
        let mut placed: Vec<_> = self
            .items
            .iter()
            .map(|p| {
                let at = p
                    .span
                    .as_ref()
                    .map_or((1, 1), |s| line_col(&self.src, s.start));
                (at, &p.message)
            })
            .collect();
        placed.sort_by_key(|(at, _)| *at);
        placed
            .into_iter()
            .map(|((line, col), msg)| format!("{}:{line}:{col}: {msg}", self.path.display()))
            .collect()
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.lines().join("\n"))
    }
}

impl std::error::Error for Problems {}

/// 1-based line and column (in characters) of byte offset `at` in `src`.
pub fn line_col(src: &str, at: usize) -> (usize, usize) {
    let at = at.min(src.len());
    let before = src.get(..at).unwrap_or(src);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let src = "a = 1\nbb = 2\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 6), (2, 1));
        assert_eq!(line_col(src, 9), (2, 4));
    }
}
