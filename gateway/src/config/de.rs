//! Deserialisation that reports *every* serde problem of a TOML file, not only the first.
//!
//! serde stops at the first error. [`deserialize_all`] records that error with its span, prunes the
//! smallest key/value (or array item) the span points into, and tries again, until the pruned
//! document deserialises. Removing a required key would only cause a follow-up "missing field"
//! error about it, so such errors are recognised and silenced (the table holding the key is pruned
//! in turn). The pruned document is kept so later checks can look up positions by key path
//! ([`span_of`]).

use super::diag::Problems;
use serde::de::DeserializeOwned;
use std::ops::Range;
use toml::de::{DeArray, DeTable, DeValue};
use toml::Spanned;

/// At most this many serde problems per file (each round removes something, so it ends anyway).
const MAX_ROUNDS: usize = 64;

/// A parsed TOML document whose problems were recorded.
pub struct Parsed<'a, T> {
    /// The value, from the document with every erroneous entry pruned; `None` when even that
    /// did not deserialise or the file is not TOML.
    pub value: Option<T>,
    /// The pruned document, for [`span_of`].
    pub doc: Spanned<DeTable<'a>>,
    /// Top-level keys that were pruned because of a problem inside them.
    pub pruned: Vec<String>,
}

/// Deserialises `src`, pushing every problem found onto `problems`.
pub fn deserialize_all<'a, T: DeserializeOwned>(
    src: &'a str,
    problems: &mut Problems,
) -> Parsed<'a, T> {
    let (mut doc, errors) = DeTable::parse_recoverable(src);
    for e in &errors {
        problems.push_toml(e);
    }
    let mut parsed = Parsed {
        value: None,
        pruned: Vec::new(),
        doc: doc.clone(),
    };
    if !errors.is_empty() {
        return parsed;
    }
    // (span of the table a key was removed from, the key): "missing field" about it is noise.
    let mut removed: Vec<(Option<Range<usize>>, String)> = Vec::new();
    for _ in 0..MAX_ROUNDS {
        let e = match T::deserialize(toml::de::Deserializer::from(doc.clone())) {
            Ok(v) => {
                parsed.value = Some(v);
                break;
            }
            Err(e) => e,
        };
        let span = e.span();
        let path = span.as_ref().and_then(|s| find(doc.get_ref(), s));
        let silent = missing_field(e.message()).is_some_and(|k| {
            removed
                .iter()
                .any(|(s, r)| r == k && (s == &span || s.is_none()))
        });
        if !silent {
            problems.push(span.clone(), message(e.message(), path.as_deref()));
        }
        let Some(path) = path else {
            break;
        };
        if let Some(Seg::Key(top)) = path.first() {
            if !parsed.pruned.contains(top) {
                parsed.pruned.push(top.clone());
            }
        }
        let top = Some(doc.span());
        match remove(doc.get_mut(), &path, top) {
            Some(r) => removed.push(r),
            None => break,
        }
    }
    parsed.doc = doc;
    parsed
}

/// serde's message, prefixed with where it is: the key path of the value, or of the table for
/// an unknown or missing key.
fn message(msg: &str, path: Option<&[Seg]>) -> String {
    let msg = msg.trim();
    let Some(path) = path else {
        return msg.replace("missing field", "missing key");
    };
    let path = if msg.starts_with("unknown field") {
        &path[..path.len().saturating_sub(1)]
    } else {
        path
    };
    let mut dotted = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) if dotted.is_empty() => dotted.push_str(k),
            Seg::Key(k) => {
                dotted.push('.');
                dotted.push_str(k);
            }
            Seg::Index(i) => dotted.push_str(&format!("[{i}]")),
        }
    }
    let mut msg = msg
        .replace("unknown field", "unknown key")
        .replace("missing field", "missing key");
    if msg.ends_with("expected a duration") {
        msg.push_str(" such as \"250ms\", \"30s\", \"15m\" or \"2h\"");
    }
    if dotted.is_empty() {
        msg
    } else {
        format!("{dotted}: {msg}")
    }
}

/// Pushes "missing key" for each of `keys` absent from the top of `src` (serde names only the
/// first); call when deserialisation failed, so that all of them are reported at once.
pub fn missing_top_keys(parsed: &Parsed<'_, impl Sized>, keys: &[&str], problems: &mut Problems) {
    for k in keys {
        let msg = format!("missing key `{k}`");
        if parsed.doc.get_ref().get(*k).is_none()
            && !parsed.pruned.iter().any(|p| p == k)
            && !problems.has_message(&msg)
        {
            problems.push(Some(0..0), msg);
        }
    }
}

/// `missing field `x`` → `x`.
fn missing_field(msg: &str) -> Option<&str> {
    msg.trim()
        .strip_prefix("missing field `")?
        .split('`')
        .next()
}

/// One step of a path into a document.
#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// The path of the innermost entry `span` points into: a key or scalar containing it, or a
/// table / array item whose own span (its `[header]`) is exactly it.
fn find(table: &DeTable<'_>, span: &Range<usize>) -> Option<Vec<Seg>> {
    for (k, v) in table {
        let here = || vec![Seg::Key(k.get_ref().to_string())];
        if contains(&k.span(), span) || v.span() == *span {
            return Some(here());
        }
        if let Some(mut rest) = find_in(v, span) {
            rest.insert(0, Seg::Key(k.get_ref().to_string()));
            return Some(rest);
        }
        if !matches!(v.get_ref(), DeValue::Table(_) | DeValue::Array(_))
            && contains(&v.span(), span)
        {
            return Some(here());
        }
    }
    None
}

fn find_in(v: &Spanned<DeValue<'_>>, span: &Range<usize>) -> Option<Vec<Seg>> {
    match v.get_ref() {
        DeValue::Table(t) => find(t, span),
        DeValue::Array(items) => items.iter().enumerate().find_map(|(i, it)| {
            if it.span() == *span {
                return Some(vec![Seg::Index(i)]);
            }
            let mut rest = find_in(it, span).or_else(|| {
                let scalar = !matches!(it.get_ref(), DeValue::Table(_) | DeValue::Array(_));
                (scalar && contains(&it.span(), span)).then(Vec::new)
            })?;
            rest.insert(0, Seg::Index(i));
            Some(rest)
        }),
        _ => None,
    }
}

/// Removes the entry at `path`; returns the span of the table it was in (`parent`, `None` at the
/// top) and its key.
fn remove(
    table: &mut DeTable<'_>,
    path: &[Seg],
    parent: Option<Range<usize>>,
) -> Option<(Option<Range<usize>>, String)> {
    let Some(Seg::Key(k)) = path.first() else {
        return None;
    };
    if path.len() == 1 {
        table.remove(k.as_str())?;
        return Some((parent, k.clone()));
    }
    let v = table.get_mut(k.as_str())?;
    let vspan = v.span();
    match (v.get_mut(), &path[1]) {
        (DeValue::Table(t), _) => remove(t, &path[1..], Some(vspan)),
        (DeValue::Array(items), Seg::Index(i)) => {
            if path.len() == 2 {
                let old = std::mem::replace(items, DeArray::new());
                for (j, it) in old.into_iter().enumerate() {
                    if j != *i {
                        items.push(it);
                    }
                }
                return Some((parent, k.clone()));
            }
            let it = items.as_mut().get_mut(*i)?;
            let ispan = it.span();
            match it.get_mut() {
                DeValue::Table(t) => remove(t, &path[2..], Some(ispan)),
                _ => None,
            }
        }
        _ => None,
    }
}

fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end && outer.start < outer.end
}

/// The span of the value at `path` (keys from the top; a number indexes an array), if present.
pub fn span_of(doc: &Spanned<DeTable<'_>>, path: &[&str]) -> Option<Range<usize>> {
    let mut cur: Option<&Spanned<DeValue<'_>>> = None;
    let mut table = Some(doc.get_ref());
    for seg in path {
        let next = match (cur.map(|c| c.get_ref()), table) {
            (Some(DeValue::Array(a)), _) => a.get(seg.parse::<usize>().ok()?),
            (_, Some(t)) => t.get(*seg),
            _ => None,
        }?;
        table = match next.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => None,
        };
        cur = Some(next);
    }
    cur.map(|c| c.span())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Top {
        name: String,
        n: Option<i64>,
        sub: Option<Sub>,
        #[serde(default)]
        arr: Vec<Sub>,
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sub {
        a: i64,
        b: Option<String>,
    }

    #[test]
    fn every_problem_is_reported_once_in_file_order() {
        let src = "name = 1\nn = \"x\"\nbogus = 3\n[sub]\nb = 2\nzz = 1\n[[arr]]\na = 1\n[[arr]]\nb = \"q\"\n";
        let mut p = Problems::new(std::path::Path::new("f.toml"), src);
        let r: Parsed<Top> = deserialize_all(src, &mut p);
        assert!(r.value.is_none());
        assert_eq!(
            p.lines(),
            [
                "f.toml:1:8: name: invalid type: integer `1`, expected a string",
                "f.toml:2:5: n: invalid type: string \"x\", expected i64",
                "f.toml:3:1: unknown key `bogus`, expected one of `name`, `n`, `sub`, `arr`",
                "f.toml:4:1: sub: missing key `a`",
                "f.toml:5:5: sub.b: invalid type: integer `2`, expected a string",
                "f.toml:6:1: sub: unknown key `zz`, expected `a` or `b`",
                "f.toml:9:1: arr[1]: missing key `a`",
            ]
        );
        assert_eq!(r.pruned.len(), 5);
    }

    #[test]
    fn syntax_errors_and_valid_documents() {
        let mut p = Problems::new(std::path::Path::new("f.toml"), "name = \n");
        let r: Parsed<Top> = deserialize_all("name = \n", &mut p);
        assert!(r.value.is_none() && p.len() == 1);
        let src = "name = \"a\"\n[sub]\na = 1\n";
        let mut p = Problems::new(std::path::Path::new("f.toml"), src);
        let r: Parsed<Top> = deserialize_all(src, &mut p);
        assert!(p.is_empty());
        assert_eq!(r.value.unwrap().sub.unwrap().a, 1);
        assert_eq!(span_of(&r.doc, &["sub", "a"]), Some(21..22));
    }
}
