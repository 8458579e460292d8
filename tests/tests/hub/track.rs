//! A device's track when one batch holds many of its fixes (a backlog drain): the hub keeps
//! them as segments of references (one sorted-set member per span of a minute), and a query
//! still answers point by point — each fix with its `ts` in the window, in `ts` order, once
//! — whatever window cuts through the segments, and after a redelivery cut differently.
//! In-process through the hub's own `Store`, on a real Redis.

use crate::store_on_fresh_redis;
use outpost_proto::batch::{parse, payload, Entry};
use outpost_proto::Class;

/// Fix `k` of device `u1`: id `<base + k>-0`, `ts` `base + 10 s × k`.
fn fix(base: i64, k: i64) -> Entry {
    let ts = chrono::DateTime::from_timestamp_millis(base + 10_000 * k).unwrap();
    Entry {
        id: format!("{}-0", base + k),
        json: format!(
            r#"{{"dev":"u1","class":"location","lat":{},"lon":2.0,"ts":"{}"}}"#,
            1.0 + k as f64 / 100.0,
            ts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        ),
    }
}

#[test]
fn a_window_through_segments_gets_exactly_its_fixes_in_order_once() {
    let (_redis, rt, store) = store_on_fresh_redis();
    // Ten minutes ago, on a whole second: 13 fixes 10 s apart, 0 s … 120 s.
    let base = (chrono::Utc::now().timestamp_millis() - 600_000) / 1000 * 1000;
    let all: Vec<Entry> = (0..13).map(|k| fix(base, k)).collect();
    let b = |entries: &[Entry]| {
        let p = payload("veh-t", Class::Location, entries, (0, 0));
        parse("veh-t", "location", &p, 1 << 20).unwrap()
    };
    rt.block_on(async {
        store.store_batch(&b(&all), "t:1:1").await.unwrap();
        // Redelivered cut differently (fixes 5-12 again, with 3-4 before them).
        store.store_batch(&b(&all[3..]), "t:2:1").await.unwrap();
        let lats = |from_s: i64, to_s: i64| {
            let store = &store;
            async move {
                let t = store
                    .track("u1", base + from_s * 1000, base + to_s * 1000)
                    .await
                    .unwrap();
                t.iter()
                    .map(|e| ((e["lat"].as_f64().unwrap() - 1.0) * 100.0).round() as i64)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(lats(0, 120).await, (0..13).collect::<Vec<_>>());
        assert_eq!(lats(25, 95).await, (3..10).collect::<Vec<_>>());
        assert_eq!(lats(60, 70).await, [6, 7]);
        assert_eq!(lats(61, 69).await, Vec::<i64>::new());
        assert_eq!(lats(115, 1000).await, [12]);
        assert_eq!(lats(-1000, 0).await, [0]);
    });
}
