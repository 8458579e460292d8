//! The `[uplink]` table or the `[[uplink]]` regions (SPEC §9): each validated like the single
//! hub always was, plus a unique region `name`.

use super::{broker, int_in, Doc};
use crate::config::diag::Problems;
use crate::config::raw::{RawUplink, UplinkTables, DEFAULT_REGION};
use crate::config::Uplink;
use std::path::Path;
use std::time::Duration;

/// Every region's settings; `None` when one is unusable (its problem is recorded).
pub(super) fn uplinks(
    base: &Path,
    doc: &Doc,
    p: &mut Problems,
    gw: &str,
    tables: &UplinkTables,
) -> Option<Vec<Uplink>> {
    let list = tables.list();
    let many = matches!(tables, UplinkTables::Many(_)) && list.len() > 1;
    let mut out = Vec::new();
    let mut ok = true;
    for (i, u) in list.iter().enumerate() {
        let section = match tables {
            UplinkTables::One(_) => "uplink".to_string(),
            UplinkTables::Many(_) => format!("uplink.{i}"),
        };
        let name = region_name(doc, p, &section, u, many);
        if let (Some(n), Some(first)) = (&name, &u.name) {
            if out.iter().any(|o: &Uplink| &o.name == n) {
                p.push(
                    Some(first.span()),
                    format!("{section}.name: region {n:?} is already defined above"),
                );
            }
        }
        match (name, one(base, doc, p, gw, &section, u)) {
            (Some(n), Some(mut up)) => {
                if n != DEFAULT_REGION && u.client_id.is_none() {
                    up.broker.client_id = format!("outpost-{gw}-uplink-{n}");
                }
                up.name = n;
                out.push(up);
            }
            _ => ok = false,
        }
    }
    if list.is_empty() {
        p.push(
            doc.at(&["uplink"]),
            "uplink: at least one [[uplink]] table is needed",
        );
        ok = false;
    }
    ok.then_some(out)
}

/// The region's name: given, or `"default"` when it is the only table.
fn region_name(
    doc: &Doc,
    p: &mut Problems,
    section: &str,
    u: &RawUplink,
    many: bool,
) -> Option<String> {
    let Some(n) = &u.name else {
        if many {
            let at = doc.at(&section.split('.').collect::<Vec<_>>());
            p.push(
                at,
                format!("{section}.name: required when there are several [[uplink]] regions"),
            );
            return None;
        }
        return Some(DEFAULT_REGION.to_string());
    };
    let s = n.get_ref();
    let valid = !s.is_empty()
        && s.len() <= 32
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        p.push(
            Some(n.span()),
            format!("{section}.name: must match [A-Za-z0-9_-]{{1,32}}, is {s:?}"),
        );
        return None;
    }
    Some(s.clone())
}

fn one(
    base: &Path,
    doc: &Doc,
    p: &mut Problems,
    gw: &str,
    section: &str,
    u: &RawUplink,
) -> Option<Uplink> {
    let client_id = u
        .client_id
        .as_ref()
        .map(|c| c.get_ref().clone())
        .unwrap_or_else(|| format!("outpost-{gw}-uplink"));
    let path: Vec<&str> = section.split('.').chain(["keep_alive"]).collect();
    crate::config::check_mqtt5_keep_alive(doc.0, &path, u.keep_alive, p);
    let path: Vec<&str> = section.split('.').chain(["max_lag"]).collect();
    if u.max_lag < Duration::from_secs(1) {
        p.push(
            doc.at(&path),
            format!("{section}.max_lag: must be at least 1s"),
        );
    }
    let b = broker(
        base,
        p,
        section,
        &u.url,
        client_id,
        u.username.clone(),
        u.password_file.as_ref(),
        u.keep_alive,
        [
            u.ca_file.as_ref(),
            u.cert_file.as_ref(),
            u.key_file.as_ref(),
        ],
    );
    let topic_prefix = u.topic_prefix.get_ref().trim_end_matches('/').to_string();
    if topic_prefix.is_empty() || topic_prefix.contains(['+', '#']) {
        p.push(
            Some(u.topic_prefix.span()),
            format!("{section}.topic_prefix: must be non-empty, without + or #"),
        );
    }
    let batch_max = int_in(
        p,
        &u.batch_max_events,
        1,
        10_000,
        &format!("{section}.batch_max_events"),
    );
    let inflight = int_in(p, &u.inflight, 1, 1_000, &format!("{section}.inflight"));
    Some(Uplink {
        name: String::new(),
        max_lag: u.max_lag,
        broker: b?,
        topic_prefix,
        batch_max_events: batch_max as usize,
        inflight: inflight as usize,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::Settings;
    use std::path::Path;

    const HEAD: &str = "[gateway]\nid = \"gw1\"\n";

    fn parse(body: &str) -> Result<Settings, String> {
        Settings::parse(Path::new("gateway.toml"), &format!("{HEAD}{body}"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_single_table_is_the_default_region_with_its_old_client_id() {
        let s = parse("[uplink]\nurl = \"mqtt://127.0.0.1:1883\"\n").unwrap();
        assert_eq!(s.uplinks.len(), 1);
        assert_eq!(s.uplinks[0].name, "default");
        assert_eq!(s.uplinks[0].broker.client_id, "outpost-gw1-uplink");
        assert_eq!(
            s.uplinks[0].max_lag,
            std::time::Duration::from_secs(6 * 3600)
        );
    }

    #[test]
    fn several_tables_are_regions_in_file_order() {
        let s = parse(
            "[[uplink]]\nname = \"boston\"\nurl = \"mqtt://a:1\"\n\n\
             [[uplink]]\nname = \"dallas\"\nurl = \"mqtt://b:2\"\nmax_lag = \"2s\"\n",
        )
        .unwrap();
        let names: Vec<_> = s.uplinks.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["boston", "dallas"]);
        assert_eq!(s.uplinks[1].broker.client_id, "outpost-gw1-uplink-dallas");
        assert_eq!(s.uplinks[1].max_lag, std::time::Duration::from_secs(2));
        assert_eq!(s.uplink.name, "boston");
    }

    #[test]
    fn duplicate_and_missing_names_are_errors_at_their_place() {
        let e = parse(
            "[[uplink]]\nname = \"boston\"\nurl = \"mqtt://a:1\"\n\n\
             [[uplink]]\nname = \"boston\"\nurl = \"mqtt://b:2\"\n",
        )
        .unwrap_err();
        assert!(e.contains("gateway.toml:8:8"), "{e}");
        assert!(e.contains("already defined"), "{e}");
        let e = parse("[[uplink]]\nurl = \"mqtt://a:1\"\n[[uplink]]\nurl = \"mqtt://b:2\"\n")
            .unwrap_err();
        assert!(e.contains("name: required"), "{e}");
        let e = parse("[[uplink]]\nname = \"bad name\"\nurl = \"mqtt://a:1\"\n").unwrap_err();
        assert!(e.contains("gateway.toml:4:8"), "{e}");
    }
}
