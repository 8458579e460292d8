//! `outpost-hub sync --from URL --to URL` (SPEC §9): anti-entropy between two regions' stores.
//! For every gateway and class of the source it pages through the history in id order and
//! stores each page in the target with the same script the receivers use, so what the target
//! has is recognised and skipped: running it twice copies nothing the second time, and a run
//! that stopped half-way is resumed by running it again. Each copied event also updates the
//! target's latest state with the ingest rule (newer `ts` wins), so devices, tracks and the geo
//! index follow.
//!
//! An endpoint is `URL[,URL…][#prefix]`: one Redis URL, or a cluster's seed URLs; the prefix
//! defaults to `hub`.

use crate::config::RedisSettings;
use crate::store::{latest_of, Store};
use outpost_proto::fields::Head;
use outpost_proto::{Class, EventId};
use serde_json::Value;
use std::io::Write;
use std::time::Duration;

/// Events read from the source per round trip.
const PAGE: usize = 1000;

/// What a sync did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub gateways: u64,
    pub seen: u64,
    pub copied: u64,
}

/// Parses `URL[,URL…][#prefix]`.
pub fn endpoint(s: &str, retention: Duration) -> Result<RedisSettings, String> {
    let (urls, prefix) = match s.rsplit_once('#') {
        Some((u, p)) => (u, p.to_string()),
        None => (s, "hub".to_string()),
    };
    let urls: Vec<String> = urls
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(String::from)
        .collect();
    if urls.is_empty() {
        return Err(format!("{s:?}: no Redis URL"));
    }
    if let Some(bad) = urls
        .iter()
        .find(|u| !u.starts_with("redis://") && !u.starts_with("rediss://"))
    {
        return Err(format!("{bad:?}: must start with redis:// or rediss://"));
    }
    if prefix.is_empty() || prefix.contains([' ', ':', '{', '}']) {
        return Err(format!(
            "prefix {prefix:?}: must be non-empty, without spaces, ':' or braces"
        ));
    }
    Ok(RedisSettings {
        cluster: urls.len() > 1,
        urls,
        prefix,
        retention,
    })
}

/// Copies what `to` lacks from `from`, printing a progress line per page to `progress`.
pub async fn sync(from: &Store, to: &Store, progress: &mut impl Write) -> anyhow::Result<Counts> {
    let mut c = Counts::default();
    for gw in from.gateway_ids().await? {
        c.gateways += 1;
        to.add_gateway(&gw).await?;
        for class in Class::ALL {
            let mut after = EventId::ZERO;
            loop {
                let page = from.events_raw(&gw, class, after, PAGE).await?;
                let Some((last, _)) = page.last() else { break };
                after = *last;
                let flags = to.store_history(&gw, class, &page, None).await?;
                let mut copied = Vec::new();
                for ((id, json), new) in page.iter().zip(&flags) {
                    if !new {
                        continue;
                    }
                    c.copied += 1;
                    if let Ok(Value::Object(o)) = serde_json::from_str::<Value>(json) {
                        let dev = o.get("dev").and_then(Value::as_str).unwrap_or("");
                        copied.push((*id, dev.to_string(), Head::of_object(&o), json));
                    }
                }
                let latest = copied
                    .iter()
                    .map(|(id, dev, head, json)| {
                        latest_of(&gw, class.as_str(), Some(*id), dev, head, json)
                    })
                    .collect();
                to.apply_latest(latest).await?;
                c.seen += page.len() as u64;
                let _ = write!(
                    progress,
                    "\r{gw} {class}: {} seen, {} copied        ",
                    c.seen, c.copied
                );
                let _ = progress.flush();
                if page.len() < PAGE {
                    break;
                }
            }
        }
    }
    let _ = writeln!(progress);
    Ok(c)
}
