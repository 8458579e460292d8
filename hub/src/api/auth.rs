//! Who may call the API (SPEC §7): `token_file` lines `<name> <role> <token>`, roles `read`
//! and `dispatch`, `#` comments; re-read on SIGHUP. Tokens are compared in constant time.

use std::path::Path;
use subtle::ConstantTimeEq;

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Read,
    Dispatch,
}

/// One caller.
#[derive(Clone, Debug)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

/// The loaded token file.
#[derive(Clone, Debug, Default)]
pub struct Tokens {
    entries: Vec<(Caller, Vec<u8>)>,
}

impl Tokens {
    /// Reads and checks a token file; the error names the line.
    pub fn load(path: &Path) -> Result<Tokens, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Tokens::parse(&text)
    }

    /// Parses the token file format.
    pub fn parse(text: &str) -> Result<Tokens, String> {
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let f: Vec<&str> = line.split_whitespace().collect();
            let [name, role, token] = f[..] else {
                return Err(format!("line {}: want `<name> <role> <token>`", i + 1));
            };
            let role = match role {
                "read" => Role::Read,
                "dispatch" => Role::Dispatch,
                r => {
                    return Err(format!(
                        "line {}: role {r:?} is not read or dispatch",
                        i + 1
                    ))
                }
            };
            if token.len() < 16 {
                return Err(format!("line {}: token shorter than 16 characters", i + 1));
            }
            entries.push((
                Caller {
                    name: name.into(),
                    role,
                },
                token.as_bytes().to_vec(),
            ));
        }
        Ok(Tokens { entries })
    }

    /// The caller holding `token`; every entry is compared so timing says nothing.
    pub fn check(&self, token: &str) -> Option<Caller> {
        let mut found = None;
        for (c, t) in &self.entries {
            if bool::from(t.as_slice().ct_eq(token.as_bytes())) {
                found = Some(c.clone());
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks() {
        let t = Tokens::parse(
            "# consoles\nboston read 0123456789abcdef\nchief dispatch fedcba9876543210 # night\n",
        )
        .unwrap();
        assert_eq!(t.check("0123456789abcdef").unwrap().role, Role::Read);
        assert_eq!(t.check("fedcba9876543210").unwrap().name, "chief");
        assert!(t.check("0123456789abcde").is_none());
        assert!(Tokens::parse("x admin 0123456789abcdef")
            .unwrap_err()
            .contains("line 1"));
        assert!(Tokens::parse("x read short").is_err());
    }
}
