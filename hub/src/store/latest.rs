//! Latest state (SPEC §7): what a batch's events leave per device once compared among
//! themselves, applied with one `latest.lua` call per device bucket.
//!
//! The comparison here is the one the script makes with what is stored, so applying a batch
//! reduced is the same as applying its events one by one: per (device, class) the event with
//! the newest `ts` wins, ties going to the higher `<gw>|<id>` (the first of equals stays);
//! `last_seen` is the newest time the device was heard (a presence event's `last_seen`, else
//! its `ts`) and `gw` the gateway of the first event that reached it; every location event
//! with an id is a point of the track, kept as a reference to the event in its gateway's
//! history (`<padded id> <gw>`, see [`track_ref`]), not as a copy of its JSON.

use super::{keys, Latest, Store, StoreError};
use chrono::Utc;
use futures_util::future::try_join_all;
use std::collections::BTreeMap;

/// One device's part of a call.
#[derive(Debug, Default)]
pub(crate) struct DevUpdate<'a> {
    pub dev: &'a str,
    /// Per class, in first-seen order: the winner and its tie (`<gw>|<padded id>`).
    pub winners: Vec<(&'a Latest, String)>,
    /// The newest time heard and the gateway that heard it then.
    pub seen: Option<(i64, &'a str)>,
    /// (ts ms, [`track_ref`]) of each location event with an id.
    pub track: Vec<(i64, String)>,
}

/// A track point: the padded id and gateway of a location event, which
/// [`Store::track`](super::Store::track) looks up in that gateway's history.
pub fn track_ref(padded_id: &str, gw: &str) -> String {
    format!("{padded_id} {gw}")
}

/// The (padded id, gateway) of a track point; `None` for a point stored as JSON.
pub fn parse_track_ref(member: &str) -> Option<(&str, &str)> {
    let (pid, gw) = member.split_at_checked(keys::PADDED_LEN)?;
    let gw = gw.strip_prefix(' ')?;
    (!member.starts_with('{') && !gw.is_empty()).then_some((pid, gw))
}

/// When a latest-state update says its device was heard: a presence event's `last_seen`, else
/// its `ts`.
fn seen_ms(it: &Latest) -> i64 {
    match it.class.as_str() {
        "presence" => it.b.parse().unwrap_or(it.ts_ms),
        _ => it.ts_ms,
    }
}

/// Groups updates by bucket and device (each in first-seen order) and reduces each device's.
pub(crate) fn reduce(items: &[Latest]) -> BTreeMap<u32, Vec<DevUpdate<'_>>> {
    let mut out: BTreeMap<u32, Vec<DevUpdate<'_>>> = BTreeMap::new();
    let mut at: std::collections::HashMap<&str, (u32, usize)> = Default::default();
    for it in items {
        let (bucket, i) = *at.entry(it.dev.as_str()).or_insert_with(|| {
            let bucket = keys::bucket(&it.dev);
            let devs = out.entry(bucket).or_default();
            devs.push(DevUpdate {
                dev: &it.dev,
                ..DevUpdate::default()
            });
            (bucket, devs.len() - 1)
        });
        let d = &mut out.get_mut(&bucket).expect("bucket just made")[i];
        let tie = format!("{}|{}", it.gw, it.tie);
        match d.winners.iter_mut().find(|(w, _)| w.class == it.class) {
            Some(w) => {
                if (it.ts_ms, tie.as_str()) > (w.0.ts_ms, w.1.as_str()) {
                    *w = (it, tie);
                }
            }
            None => d.winners.push((it, tie)),
        }
        let seen = seen_ms(it);
        if d.seen.is_none_or(|(s, _)| seen > s) {
            d.seen = Some((seen, &it.gw));
        }
        if it.class == "location" && !it.tie.is_empty() {
            d.track.push((it.ts_ms, track_ref(&it.tie, &it.gw)));
        }
    }
    out
}

impl Store {
    /// Applies latest-state updates, one script call per device bucket, concurrently.
    pub async fn apply_latest(&self, items: Vec<Latest>) -> Result<(), StoreError> {
        let cutoff = Utc::now().timestamp_millis() - self.retention_ms;
        let calls = reduce(&items).into_iter().map(|(bucket, devs)| {
            let mut inv = self.latest.prepare_invoke();
            inv.key(self.keys.devices(bucket))
                .key(self.keys.geo(bucket))
                .arg(cutoff)
                .arg(devs.len());
            for d in &devs {
                inv.key(self.keys.dev(bucket, d.dev))
                    .key(self.keys.track(bucket, d.dev));
                let (seen, seen_gw) = match d.seen {
                    Some((ms, gw)) => (ms.to_string(), gw),
                    None => (String::new(), ""),
                };
                inv.arg(d.dev)
                    .arg(seen)
                    .arg(seen_gw)
                    .arg(d.winners.len())
                    .arg(d.track.len());
                for (w, tie) in &d.winners {
                    inv.arg(&w.class)
                        .arg(w.ts_ms)
                        .arg(tie)
                        .arg(&w.json)
                        .arg(&w.a)
                        .arg(&w.b);
                }
                for (ts, point) in &d.track {
                    inv.arg(*ts).arg(point);
                }
            }
            let mut conn = self.conn();
            async move { inv.invoke_async::<i64>(&mut conn).await }
        });
        try_join_all(calls).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(dev: &str, class: &str, gw: &str, tie: &str, ts_ms: i64, b: &str) -> Latest {
        Latest {
            dev: dev.into(),
            class: class.into(),
            gw: gw.into(),
            tie: tie.into(),
            ts_ms,
            json: format!("{dev}/{class}/{gw}/{tie}/{ts_ms}"),
            a: String::new(),
            b: b.into(),
        }
    }

    #[test]
    fn per_class_the_newest_wins_ties_to_the_higher_gateway_and_id_and_the_first_of_equals() {
        let items = vec![
            item("r1", "location", "g1", "2", 100, ""),
            item("r1", "location", "g1", "3", 90, ""),
            item("r1", "status", "g1", "4", 50, ""),
            item("r1", "location", "g0", "9", 100, ""),
            item("r1", "location", "g2", "1", 100, ""),
            item("r1", "location", "g2", "1", 100, ""),
        ];
        let by = reduce(&items);
        let d = &by[&keys::bucket("r1")][0];
        assert_eq!(d.winners.len(), 2);
        assert!(
            std::ptr::eq(d.winners[0].0, &items[4]),
            "{:?}",
            d.winners[0]
        );
        assert_eq!(d.winners[0].1, "g2|1");
        assert!(std::ptr::eq(d.winners[1].0, &items[2]));
        assert_eq!(d.seen, Some((100, "g1")));
        assert_eq!(d.track.len(), 5);
        assert_eq!(d.track[0].1, "2 g1");
    }

    #[test]
    fn track_refs_name_their_event_and_json_points_are_not_refs() {
        let pid = keys::pad(outpost_proto::EventId { ms: 5, seq: 1 });
        let r = track_ref(&pid, "veh-1");
        assert_eq!(parse_track_ref(&r), Some((pid.as_str(), "veh-1")));
        assert_eq!(
            parse_track_ref(r#"{"dev":"r1","class":"location","lat":1,"lon":2}"#),
            None
        );
        assert_eq!(parse_track_ref(&pid), None);
    }

    #[test]
    fn presence_is_seen_at_its_last_seen_and_snapshot_entries_make_no_track() {
        let items = vec![
            item("r1", "location", "g1", "", 100, ""),
            item("r1", "presence", "g2", "5", 100, "300"),
            item("r2", "presence", "g2", "6", 100, ""),
        ];
        let by = reduce(&items);
        let all: Vec<&DevUpdate> = by.values().flatten().collect();
        let r1 = all.iter().find(|d| d.dev == "r1").unwrap();
        let r2 = all.iter().find(|d| d.dev == "r2").unwrap();
        assert_eq!(r1.seen, Some((300, "g2")));
        assert!(r1.track.is_empty());
        assert_eq!(r2.seen, Some((100, "g2")));
    }
}
