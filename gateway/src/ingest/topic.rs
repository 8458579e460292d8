//! MQTT topic filters and device ids from topics (sans-I/O).

/// Checks an MQTT topic filter: `+` and `#` only as whole levels, `#` only last.
pub fn validate_filter(filter: &str) -> Result<(), String> {
    if filter.is_empty() {
        return Err("topic filter must not be empty".into());
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, l) in levels.iter().enumerate() {
        if l.contains('#') && (*l != "#" || i + 1 != levels.len()) {
            return Err(format!("{filter:?}: '#' must be a whole last level"));
        }
        if l.contains('+') && *l != "+" {
            return Err(format!("{filter:?}: '+' must be a whole level"));
        }
    }
    Ok(())
}

/// True when `topic` matches `filter` (MQTT 3.1.1 §4.7).
pub fn matches(filter: &str, topic: &str) -> bool {
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return !topic.starts_with('$'),
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// A device id template: literal text with `{N}` = topic level N (0-based).
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceIdTemplate(Vec<Part>);

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(String),
    Level(usize),
}

impl DeviceIdTemplate {
    /// Parses `"{1}-{2}"`-style templates.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = s;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Lit(rest[..open].to_string()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("{s:?}: unclosed '{{'"))?;
            let n = &rest[open + 1..open + close];
            let level = n
                .parse::<usize>()
                .map_err(|_| format!("{s:?}: {{{n}}} is not a topic level number"))?;
            parts.push(Part::Level(level));
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Lit(rest.to_string()));
        }
        if !parts.iter().any(|p| matches!(p, Part::Level(_))) {
            return Err(format!("{s:?}: needs at least one {{N}} topic level"));
        }
        Ok(DeviceIdTemplate(parts))
    }

    /// The last topic level (the default when a profile names no template).
    pub fn last_level() -> Self {
        DeviceIdTemplate(vec![Part::Level(usize::MAX)])
    }

    /// The device id for `topic`, or `None` when a level is missing or empty.
    pub fn apply(&self, topic: &str) -> Option<String> {
        let levels: Vec<&str> = topic.split('/').collect();
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Part::Lit(l) => out.push_str(l),
                Part::Level(usize::MAX) => out.push_str(levels.last()?),
                Part::Level(n) => {
                    let l = levels.get(*n)?;
                    if l.is_empty() {
                        return None;
                    }
                    out.push_str(l)
                }
            }
        }
        (!out.is_empty() && out.len() <= 128).then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_per_mqtt() {
        assert!(matches("owntracks/+/+", "owntracks/alice/phone"));
        assert!(!matches("owntracks/+/+", "owntracks/alice/phone/event"));
        assert!(matches("msh/#", "msh/EU/2/json/LongFast/!abcd"));
        assert!(matches("a/#", "a"));
        assert!(!matches("#", "$SYS/x"));
        assert!(validate_filter("a/#/b").is_err());
        assert!(validate_filter("a/b+").is_err());
    }

    #[test]
    fn device_id_from_levels() {
        let t = DeviceIdTemplate::parse("{1}-{2}").unwrap();
        assert_eq!(
            t.apply("owntracks/alice/phone").as_deref(),
            Some("alice-phone")
        );
        assert_eq!(t.apply("owntracks/alice"), None);
        assert_eq!(
            DeviceIdTemplate::last_level().apply("a/b/c").as_deref(),
            Some("c")
        );
        assert!(DeviceIdTemplate::parse("fixed").is_err());
        assert!(DeviceIdTemplate::parse("{x}").is_err());
    }
}
