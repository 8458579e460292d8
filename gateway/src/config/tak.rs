//! `[[tak]]` tables of `gateway.toml` (SPEC §10): validated into [`TakOutput`]s, TLS material
//! read now (a bad key fails `outpost check`, not the first connect), and the `tak` profile
//! loaded when a table subscribes (its presence timeout applies to TAK users).

use super::diag::Problems;
use super::loader::{ProfileLoader, Unusable};
use super::raw::RawTak;
use super::{DecoderKind, Profile, TakOutput};
use outpost_cot::tls::{client_config, Endpoint};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

/// The name of the profile TAK users get.
pub const TAK_PROFILE: &str = "tak";

/// Validates every `[[tak]]` table; problems go to `p`. `gw` is the default callsign. The
/// hub validates its `[[tak]]` tables with this too (same table, same messages).
pub fn outputs(base: &Path, gw: &str, raw: &[RawTak], p: &mut Problems) -> Vec<TakOutput> {
    let mut out: Vec<TakOutput> = Vec::new();
    for (i, t) in raw.iter().enumerate() {
        let name = match &t.name {
            Some(n) => {
                let s = n.get_ref();
                if s.is_empty()
                    || !s
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
                {
                    p.push(
                        Some(n.span()),
                        "tak.name: must be 1 or more of [A-Za-z0-9._-]",
                    );
                } else if out.iter().any(|o| o.name == *s) {
                    p.push(Some(n.span()), format!("tak.name: {s:?} is named twice"));
                }
                s.clone()
            }
            None if i == 0 => "tak".to_string(),
            None => format!("tak{}", i + 1),
        };
        let endpoint = match Endpoint::parse(t.url.get_ref()) {
            Ok(e) => e,
            Err(e) => {
                p.push(Some(t.url.span()), format!("tak.url: {e}"));
                continue;
            }
        };
        let files = [&t.ca_file, &t.cert_file, &t.key_file];
        let [ca, cert, key] = files.map(|f| f.as_ref().map(|f| base.join(f.get_ref())));
        if !endpoint.tls {
            if let Some(f) = files.iter().copied().flatten().next() {
                p.push(
                    Some(f.span()),
                    "tak: ca_file, cert_file and key_file need an ssl:// url",
                );
            }
        } else if let Err(e) = client_config(ca.as_deref(), cert.as_deref(), key.as_deref()) {
            // Point at the file the message names (paths only: never key material).
            let span = files
                .iter()
                .copied()
                .flatten()
                .find(|f| e.contains(&base.join(f.get_ref()).display().to_string()))
                .or(t.key_file.as_ref())
                .map_or(t.url.span(), |f| f.span());
            p.push(Some(span), format!("tak: TLS: {e}"));
        }
        let callsign = match &t.callsign {
            Some(c) if c.get_ref().trim().is_empty() || c.get_ref().len() > 64 => {
                p.push(Some(c.span()), "tak.callsign: must be 1 to 64 bytes");
                gw.to_string()
            }
            Some(c) => c.get_ref().clone(),
            None => gw.to_string(),
        };
        let queue = *t.queue.get_ref();
        if !(16..=1_000_000).contains(&queue) {
            p.push(
                Some(t.queue.span()),
                "tak.queue: must be between 16 and 1000000",
            );
        }
        out.push(TakOutput {
            name,
            endpoint,
            ca_file: ca,
            cert_file: cert,
            key_file: key,
            subscribe: t.subscribe,
            callsign,
            queue: queue.clamp(16, 1_000_000) as usize,
        });
    }
    out
}

/// The `tak` profile, when some `[[tak]]` subscribes; a missing or wrong one is a problem at
/// the first `[[tak]]` table (`at`).
pub(super) fn users_profile(
    at: Option<Range<usize>>,
    raw: &[RawTak],
    loader: &mut ProfileLoader,
    p: &mut Problems,
    profile_problems: &mut Vec<Problems>,
) -> Option<Arc<Profile>> {
    if !raw.iter().any(|t| t.subscribe) {
        return None;
    }
    match loader.get(TAK_PROFILE, profile_problems) {
        Ok(pr) if pr.decoder == DecoderKind::Cot => Some(pr),
        Ok(pr) => {
            p.push(
                at,
                format!(
                    "tak: subscribe = true needs profile {TAK_PROFILE:?} with decoder \"cot\" (it has {:?})",
                    pr.decoder.name()
                ),
            );
            None
        }
        Err(Unusable::NotFound(msg)) => {
            p.push(
                at,
                format!("tak: subscribe = true needs the TAK users' profile: {msg}"),
            );
            None
        }
        Err(Unusable::Invalid(path)) => {
            p.push(
                at,
                format!(
                    "tak: profile {TAK_PROFILE:?} is invalid (see {})",
                    path.display()
                ),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Settings;

    /// Problems of `tak` tables appended to a minimal config (with the shipped profiles).
    fn problems(tables: &str, with_tak_profile: bool) -> Result<Settings, Vec<String>> {
        let dir = tempfile::tempdir().unwrap();
        let profiles = dir.path().join("profiles");
        std::fs::create_dir(&profiles).unwrap();
        if with_tak_profile {
            let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/../device-profiles/tak.toml");
            std::fs::copy(shipped, profiles.join("tak.toml")).unwrap();
        }
        let src = format!(
            "[gateway]\nid = \"veh-1\"\nprofiles = \"profiles\"\n[uplink]\nurl = \"mqtt://127.0.0.1:1\"\n{tables}"
        );
        let path = dir.path().join("gateway.toml");
        std::fs::write(&path, &src).unwrap();
        let prefix = format!("{}/", dir.path().display());
        Settings::parse(&path, &src).map_err(|e| {
            e.lines()
                .into_iter()
                .map(|l| l.replace(&prefix, ""))
                .collect()
        })
    }

    #[test]
    fn plain_and_defaults() {
        let s = problems("[[tak]]\nurl = \"tcp://127.0.0.1:8087\"\n[[tak]]\nurl = \"tcp://tak.local\"\nsubscribe = true\ncallsign = \"Engine 42\"\n", true).unwrap();
        assert_eq!(s.tak.len(), 2);
        assert_eq!(
            (s.tak[0].name.as_str(), s.tak[0].callsign.as_str()),
            ("tak", "veh-1")
        );
        assert_eq!(
            (s.tak[1].name.as_str(), s.tak[1].endpoint.port),
            ("tak2", 8087)
        );
        assert!(s.tak[1].subscribe);
        assert_eq!(
            s.tak_profile.as_ref().unwrap().presence_timeout.as_secs(),
            600
        );
    }

    #[test]
    fn every_problem_at_its_key() {
        let e = problems(
            "[[tak]]\nurl = \"udp://x\"\n[[tak]]\nurl = \"tcp://h:1\"\nca_file = \"ca.pem\"\nqueue = 1\n[[tak]]\nurl = \"ssl://h\"\nca_file = \"missing.pem\"\nsubscribe = true\n",
            false,
        )
        .unwrap_err();
        assert_eq!(
            e,
            [
                "gateway.toml:6:1: tak: subscribe = true needs the TAK users' profile: \"tak\" not found (no profiles/tak.toml)",
                "gateway.toml:7:7: tak.url: \"udp://x\": scheme must be tcp:// or ssl://",
                "gateway.toml:10:11: tak: ca_file, cert_file and key_file need an ssl:// url",
                "gateway.toml:11:9: tak.queue: must be between 16 and 1000000",
                "gateway.toml:14:11: tak: TLS: cannot read missing.pem: I/O error: No such file or directory (os error 2)",
            ]
        );
    }

    #[test]
    fn the_tak_profile_is_not_a_source_and_tak_type_is_checked() {
        let e = problems(
            "[devices_mqtt]\n[[mqtt]]\nprofile = \"tak\"\n[[serial]]\ndevice = \"g\"\npath = \"/dev/null\"\nprofile = \"tak\"\n",
            true,
        )
        .unwrap_err();
        let msg = "profile: a \"cot\" profile is for TAK users; [[tak]] subscribe = true uses it";
        assert_eq!(
            e,
            [
                format!("gateway.toml:8:11: mqtt.{msg}"),
                format!("gateway.toml:12:11: serial.{msg}"),
            ]
        );
        let p = crate::config::Profile::parse(
            std::path::Path::new("r.toml"),
            "name = \"r\"\ndescription = \"x\"\nversion = 1\ndecoder = \"json\"\ntak_type = \"<b>\"\n[mqtt]\ntopic = \"r/+\"\n[json.message]\ntext = \"/t\"\n",
        )
        .unwrap_err();
        assert!(
            p.lines()
                .iter()
                .any(|l| l
                    == "r.toml:5:12: tak_type: \"<b>\" is not a CoT unit type like \"a-f-G-U-C\""),
            "{:?}",
            p.lines()
        );
    }
}
