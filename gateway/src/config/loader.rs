//! Profiles named by the config, found by name in the profiles folder or by path, loaded once.

use super::diag::Problems;
use super::profile::Profile;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a profile the config names cannot be used.
pub enum Unusable {
    /// No such file; the message says where it looked (and what is there instead).
    NotFound(String),
    /// It exists but has problems (reported under its own file name).
    Invalid(PathBuf),
}

/// Finds profiles by name (`<dir>/<name>.toml`) or path, loading each once.
pub struct ProfileLoader {
    dir: PathBuf,
    base: PathBuf,
    loaded: Vec<(String, Result<Arc<Profile>, PathBuf>)>,
}

impl ProfileLoader {
    /// Names are looked up in `dir`; relative paths are relative to `base` (the config's folder).
    pub fn new(dir: PathBuf, base: &Path) -> Self {
        ProfileLoader {
            dir,
            base: base.to_path_buf(),
            loaded: Vec::new(),
        }
    }

    /// The profile `name`; its problems go to `problems` the first time it is loaded.
    pub fn get(
        &mut self,
        name: &str,
        problems: &mut Vec<Problems>,
    ) -> Result<Arc<Profile>, Unusable> {
        if let Some((_, p)) = self.loaded.iter().find(|(n, _)| n == name) {
            return p.clone().map_err(Unusable::Invalid);
        }
        let path = resolve_profile(name, &self.dir, &self.base);
        if !path.is_file() {
            return Err(Unusable::NotFound(self.not_found(name, &path)));
        }
        let result = Profile::load(&path).map(Arc::new).map_err(|e| {
            problems.push(e);
            path.clone()
        });
        self.loaded.push((name.to_string(), result.clone()));
        result.map_err(Unusable::Invalid)
    }

    fn not_found(&self, name: &str, path: &Path) -> String {
        let mut msg = format!("{name:?} not found (no {})", path.display());
        if let Some(close) = closest(name, &self.dir) {
            msg.push_str(&format!("; did you mean {close:?}?"));
        }
        msg
    }
}

/// The profile in `dir` whose name is nearest to `name`, if it is a likely typo.
fn closest(name: &str, dir: &Path) -> Option<String> {
    let entries = std::fs::read_dir(dir).ok()?;
    entries
        .filter_map(|e| {
            let p = e.ok()?.path();
            (p.extension()? == "toml").then(|| p.file_stem()?.to_str().map(String::from))?
        })
        .map(|n| (edit_distance(name, &n), n))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, n)| n)
}

/// Levenshtein distance, in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// A profile argument is a path when it has a `/` or ends in `.toml`, else a name in `dir`.
pub fn resolve_profile(name: &str, dir: &Path, base: &Path) -> PathBuf {
    if name.contains('/') || name.ends_with(".toml") {
        base.join(name)
    } else {
        dir.join(format!("{name}.toml"))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(super::edit_distance("nmea-gsp", "nmea-gps"), 2);
        assert_eq!(super::edit_distance("ublox", "ublox"), 0);
        assert_eq!(super::edit_distance("", "abc"), 3);
    }
}
