//! Latest state (SPEC §7): what a batch's events leave per device once compared among
//! themselves, applied with one `latest.lua` call (one per device bucket on a cluster).
//!
//! The comparison here is the one the script makes with what is stored, so applying a batch
//! reduced is the same as applying its events one by one: per (device, class) the event with
//! the newest `ts` wins, ties going to the higher `<gw>|<id>` (the first of equals stays);
//! `last_seen` is the newest time the device was heard (a presence event's `last_seen`, else
//! its `ts`) and `gw` the gateway of the first event that reached it; every location event
//! with an id is a point of the track, kept as a reference to the event in its gateway's
//! history, not as a copy of its JSON. A device's points of one batch within [`TRACK_SPAN_MS`]
//! of each other are one member (a segment, see [`segment_ref`]): a batch that waited at the
//! gateway holds several fixes of each device, and each track member costs Redis a sorted-set
//! insert (the track was a third of the hub's Redis CPU in `outpost-bench hub`, five fixes a
//! device a batch).

use super::{keys, Latest, Store, StoreError};
use chrono::Utc;
use futures_util::future::try_join_all;
use outpost_proto::EventId;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

/// One device's part of a call.
#[derive(Debug, Default)]
pub(crate) struct DevUpdate<'a> {
    pub dev: &'a str,
    /// Per class, in first-seen order, the winner.
    pub winners: Vec<&'a Latest<'a>>,
    /// The newest time heard and the gateway that heard it then.
    pub seen: Option<(i64, &'a str)>,
    /// The location events with an id: (ts ms, id, gateway).
    pub points: Vec<(i64, EventId, &'a str)>,
    /// The track members those make: (earliest ts ms, [`segment_ref`]).
    pub track: Vec<(i64, String)>,
}

/// The most a track segment's points are apart (ms): a track query for `[from, to]` reads the
/// members scored from `from - TRACK_SPAN_MS`, and retention drops a member once its
/// earliest point is this much older than the cutoff (then every point of it is older).
pub const TRACK_SPAN_MS: i64 = 60_000;
/// The most points in one segment (bounds a member's size: 42 bytes a point).
const SEGMENT_POINTS: usize = 64;

/// A track member for points `ids` (by `ts`) of gateway `gw`: their padded ids joined by `,`,
/// a space, the gateway (`<padded id> <gw>` for one point, as written before segments).
/// [`Store::track`](super::Store::track) looks each up in that gateway's history.
pub fn segment_ref(ids: &[EventId], gw: &str) -> String {
    let mut s = String::with_capacity(ids.len() * (keys::PADDED_LEN + 1) + gw.len());
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        keys::pad_into(&mut s, *id);
    }
    s.push(' ');
    s.push_str(gw);
    s
}

/// A device's points as track members: per gateway, by `ts`, cut where a point is more than
/// [`TRACK_SPAN_MS`] after its segment's first or the segment is full; an id twice is one point.
fn segments(points: &[(i64, EventId, &str)]) -> Vec<(i64, String)> {
    let mut by_gw: BTreeMap<&str, Vec<(i64, EventId)>> = BTreeMap::new();
    for (ts, id, gw) in points {
        by_gw.entry(gw).or_default().push((*ts, *id));
    }
    let mut out = Vec::new();
    for (gw, mut ps) in by_gw {
        ps.sort();
        ps.dedup_by_key(|p| p.1);
        let mut start = 0;
        while start < ps.len() {
            let first = ps[start].0;
            let end = ps[start..]
                .iter()
                .take(SEGMENT_POINTS)
                .take_while(|p| p.0 - first <= TRACK_SPAN_MS)
                .count();
            let ids: Vec<EventId> = ps[start..start + end].iter().map(|p| p.1).collect();
            out.push((first, segment_ref(&ids, gw)));
            start += end;
        }
    }
    out
}

/// The (padded ids, gateway) of a track member ([`segment_ref`]); `None` for a point stored
/// as JSON (before references).
pub fn parse_track_ref(member: &str) -> Option<(Vec<&str>, &str)> {
    if member.starts_with('{') {
        return None;
    }
    let mut pids = Vec::new();
    let mut rest = member;
    loop {
        let (pid, after) = rest.split_at_checked(keys::PADDED_LEN)?;
        pids.push(pid);
        match after.strip_prefix(',') {
            Some(more) => rest = more,
            None => {
                let gw = after.strip_prefix(' ')?;
                return (!gw.is_empty()).then_some((pids, gw));
            }
        }
    }
}

/// The tie of an update as the script compares it: `<gw>|<padded id>` (`<gw>|` without an id).
pub(crate) fn tie(it: &Latest<'_>) -> String {
    format!("{}|{}", it.gw, it.id.map(keys::pad).unwrap_or_default())
}

/// Whether `a` beats `b` for the latest state: a newer `ts`, or the same and a higher tie.
/// Compares the tie strings only when the gateways differ (within one gateway the padded ids
/// order as the ids do, none lowest).
fn beats(a: &Latest<'_>, b: &Latest<'_>) -> bool {
    match a.ts_ms.cmp(&b.ts_ms) {
        Ordering::Greater => true,
        Ordering::Less => false,
        Ordering::Equal if a.gw == b.gw => a.id > b.id,
        Ordering::Equal => tie(a) > tie(b),
    }
}

/// When an update says its device was heard: a presence event's `last_seen`, else its `ts`.
fn seen_ms(it: &Latest<'_>) -> i64 {
    match it.class {
        "presence" => it.last_seen_ms().unwrap_or(it.ts_ms),
        _ => it.ts_ms,
    }
}

/// Groups updates by bucket and device (each in first-seen order) and reduces each device's.
pub(crate) fn reduce<'a>(items: &'a [Latest<'a>]) -> BTreeMap<u32, Vec<DevUpdate<'a>>> {
    let mut out: BTreeMap<u32, Vec<DevUpdate<'a>>> = BTreeMap::new();
    let mut at: HashMap<&str, (u32, usize)> = HashMap::new();
    for it in items {
        let (bucket, i) = *at.entry(it.dev).or_insert_with(|| {
            let bucket = keys::bucket(it.dev);
            let devs = out.entry(bucket).or_default();
            devs.push(DevUpdate {
                dev: it.dev,
                ..DevUpdate::default()
            });
            (bucket, devs.len() - 1)
        });
        let d = &mut out.get_mut(&bucket).expect("bucket just made")[i];
        match d.winners.iter_mut().find(|w| w.class == it.class) {
            Some(w) => {
                if beats(it, w) {
                    *w = it;
                }
            }
            None => d.winners.push(it),
        }
        let seen = seen_ms(it);
        if d.seen.is_none_or(|(s, _)| seen > s) {
            d.seen = Some((seen, it.gw));
        }
        if let (Some(id), "location") = (it.id, it.class) {
            d.points.push((it.ts_ms, id, it.gw));
        }
    }
    for d in out.values_mut().flatten() {
        d.track = segments(&d.points);
    }
    out
}

impl Store {
    /// Applies latest-state updates: on a Redis Cluster one script call per device bucket (each
    /// its own slot), concurrently; on a single Redis one call for all.
    pub async fn apply_latest(&self, items: Vec<Latest<'_>>) -> Result<(), StoreError> {
        // A member goes once its earliest point is a span older than the cutoff: then all are.
        let now = Utc::now().timestamp_millis();
        let cutoff = now - self.retention_ms - TRACK_SPAN_MS;
        let by_bucket = reduce(&items);
        let groups: Vec<Vec<(u32, Vec<DevUpdate<'_>>)>> = if self.cluster {
            by_bucket.into_iter().map(|b| vec![b]).collect()
        } else {
            vec![by_bucket.into_iter().collect()]
        };
        let calls = groups.into_iter().filter(|g| !g.is_empty()).map(|group| {
            let nkeys = group.iter().map(|(_, devs)| 2 + 2 * devs.len()).sum();
            let mut cmd = Self::evalsha(&self.latest, nkeys);
            for (bucket, devs) in &group {
                cmd.arg(self.keys.devices(*bucket))
                    .arg(self.keys.geo(*bucket));
                for d in devs {
                    cmd.arg(self.keys.dev(*bucket, d.dev))
                        .arg(self.keys.track(*bucket, d.dev));
                }
            }
            cmd.arg(cutoff).arg(now).arg(group.len());
            for (_, devs) in &group {
                cmd.arg(devs.len());
                for d in devs {
                    device_args(&mut cmd, d);
                }
            }
            async move { self.run_script::<i64>(&self.latest, &cmd).await }
        });
        try_join_all(calls).await?;
        Ok(())
    }
}

/// One device's arguments of a `latest.lua` call.
fn device_args(cmd: &mut redis::Cmd, d: &DevUpdate<'_>) {
    let (seen, seen_gw) = match d.seen {
        Some((ms, gw)) => (ms.to_string(), gw),
        None => (String::new(), ""),
    };
    cmd.arg(d.dev)
        .arg(seen)
        .arg(seen_gw)
        .arg(d.winners.len())
        .arg(d.track.len());
    for w in &d.winners {
        let (a, b) = w.detail();
        cmd.arg(w.class)
            .arg(w.ts_ms)
            .arg(tie(w))
            .arg(w.json)
            .arg(a)
            .arg(b);
    }
    for (ts, point) in &d.track {
        cmd.arg(*ts).arg(point);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_proto::fields::Head;

    struct Ev {
        dev: &'static str,
        class: &'static str,
        gw: &'static str,
        id: Option<u64>,
        ts_ms: i64,
        head: Head,
    }

    fn ev(dev: &'static str, class: &'static str, gw: &'static str, id: u64, ts_ms: i64) -> Ev {
        Ev {
            dev,
            class,
            gw,
            id: (id > 0).then_some(id),
            ts_ms,
            head: Head::default(),
        }
    }

    fn latest(evs: &[Ev]) -> Vec<Latest<'_>> {
        evs.iter()
            .map(|e| Latest {
                dev: e.dev,
                class: e.class,
                gw: e.gw,
                id: e.id.map(|ms| EventId { ms, seq: 0 }),
                ts_ms: e.ts_ms,
                json: "{}",
                head: &e.head,
            })
            .collect()
    }

    #[test]
    fn per_class_the_newest_wins_ties_to_the_higher_gateway_and_id_and_the_first_of_equals() {
        let evs = [
            ev("r1", "location", "g1", 2, 100),
            ev("r1", "location", "g1", 3, 90),
            ev("r1", "status", "g1", 4, 50),
            ev("r1", "location", "g0", 9, 100),
            ev("r1", "location", "g2", 1, 100),
            ev("r1", "location", "g2", 1, 100),
            // "g1|…" > "g10|…" as the script compares ties ('|' is above '0').
            ev("r2", "location", "g10", 5, 100),
            ev("r2", "location", "g1", 4, 100),
        ];
        let items = latest(&evs);
        let by = reduce(&items);
        let all: Vec<&DevUpdate> = by.values().flatten().collect();
        let r1 = all.iter().find(|d| d.dev == "r1").unwrap();
        assert_eq!(r1.winners.len(), 2);
        assert!(
            std::ptr::eq(r1.winners[0], &items[4]),
            "{:?}",
            r1.winners[0]
        );
        assert_eq!(
            tie(r1.winners[0]),
            format!("g2|{}", keys::pad(EventId { ms: 1, seq: 0 }))
        );
        assert!(std::ptr::eq(r1.winners[1], &items[2]));
        assert_eq!(r1.seen, Some((100, "g1")));
        // Five fixes, one segment per gateway (g2's id 1 came twice: one point).
        let id = |ms| EventId { ms, seq: 0 };
        assert_eq!(r1.points.len(), 5);
        assert_eq!(
            r1.track,
            [
                (100, segment_ref(&[id(9)], "g0")),
                (90, segment_ref(&[id(3), id(2)], "g1")),
                (100, segment_ref(&[id(1)], "g2")),
            ]
        );
        let r2 = all.iter().find(|d| d.dev == "r2").unwrap();
        assert!(std::ptr::eq(r2.winners[0], &items[7]));
    }

    #[test]
    fn presence_is_seen_at_its_last_seen_and_snapshot_entries_make_no_track() {
        let mut evs = [
            ev("r1", "location", "g1", 0, 100),
            ev("r1", "presence", "g2", 5, 100),
            ev("r2", "presence", "g2", 6, 100),
        ];
        evs[1].head.last_seen = Some("1970-01-01T00:00:00.300Z".into());
        let items = latest(&evs);
        let by = reduce(&items);
        let all: Vec<&DevUpdate> = by.values().flatten().collect();
        let r1 = all.iter().find(|d| d.dev == "r1").unwrap();
        let r2 = all.iter().find(|d| d.dev == "r2").unwrap();
        assert_eq!(r1.seen, Some((300, "g2")));
        assert!(r1.track.is_empty());
        assert_eq!(r2.seen, Some((100, "g2")));
    }

    #[test]
    fn a_devices_fixes_are_cut_into_segments_by_span_and_size() {
        let id = |ms| EventId { ms, seq: 0 };
        let span = TRACK_SPAN_MS as u64;
        // Out of order as they may come; a span apart exactly stays in, one ms more does not.
        let mut points: Vec<(i64, EventId, &str)> = [5, 1, 1 + span, 2 + span]
            .into_iter()
            .map(|ms| (ms as i64, id(ms), "g1"))
            .collect();
        assert_eq!(
            segments(&points),
            [
                (1, segment_ref(&[id(1), id(5), id(1 + span)], "g1")),
                (2 + span as i64, segment_ref(&[id(2 + span)], "g1")),
            ]
        );
        points = (0..SEGMENT_POINTS as u64 + 1)
            .map(|ms| (ms as i64, id(ms + 1), "g1"))
            .collect();
        let s = segments(&points);
        assert_eq!(s.len(), 2);
        assert_eq!(parse_track_ref(&s[0].1).unwrap().0.len(), SEGMENT_POINTS);
        assert_eq!(
            s[1],
            (
                SEGMENT_POINTS as i64,
                segment_ref(&[id(SEGMENT_POINTS as u64 + 1)], "g1")
            )
        );
    }

    #[test]
    fn track_refs_name_their_events_and_json_points_are_not_refs() {
        let (a, b) = (EventId { ms: 5, seq: 1 }, EventId { ms: 7, seq: 0 });
        let (pa, pb) = (keys::pad(a), keys::pad(b));
        let r = segment_ref(&[a], "veh 1");
        assert_eq!(
            r,
            format!("{pa} veh 1"),
            "one point: as written before segments"
        );
        assert_eq!(parse_track_ref(&r), Some((vec![pa.as_str()], "veh 1")));
        let r = segment_ref(&[a, b], "veh-1");
        assert_eq!(
            parse_track_ref(&r),
            Some((vec![pa.as_str(), pb.as_str()], "veh-1"))
        );
        assert_eq!(parse_track_ref(&format!("{pa},{pb}")), None);
        assert_eq!(parse_track_ref(&format!("{pa},x veh-1")), None);
        assert_eq!(
            parse_track_ref(r#"{"dev":"r1","class":"location","lat":1,"lon":2}"#),
            None
        );
        assert_eq!(parse_track_ref(&pa), None);
    }
}
