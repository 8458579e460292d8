//! The history script's paths, each on cue, through the hub's own `Store` against a real
//! Redis: a batch above every stored id, one overtaken by a later batch (below the top, none of
//! its range stored), one with some ids stored, one entirely stored, and ids out of order. The
//! binary's tests reach these only as the receiver's timing happens to order its batches.

use outpost_proto::{Class, EventId};

use crate::store_on_fresh_redis;

#[test]
fn each_path_of_the_history_script_stores_every_id_once() {
    let (redis, rt, store) = store_on_fresh_redis();
    rt.block_on(async {
        let store_ids = |ids: &'static [u64]| {
            let store = store.clone();
            async move {
                let items: Vec<(EventId, String)> = ids
                    .iter()
                    .map(|&ms| {
                        let json = format!(r#"{{"dev":"u1","class":"location","id":"{ms}-0"}}"#);
                        (EventId { ms, seq: 0 }, json)
                    })
                    .collect();
                store
                    .store_history("veh-h", Class::Location, &items, None)
                    .await
                    .unwrap()
            }
        };
        // Above every stored id.
        assert_eq!(store_ids(&[30, 40]).await, [true, true]);
        // Overtaken: below the top, nothing stored between its first and last id.
        assert_eq!(store_ids(&[10, 20]).await, [true, true]);
        // Some of its ids stored (a batch cut differently around them).
        assert_eq!(store_ids(&[20, 25, 30]).await, [false, true, false]);
        // Entirely stored (republished).
        assert_eq!(store_ids(&[10, 20, 25]).await, [false, false, false]);
        // Late, below everything, nothing stored in its range.
        assert_eq!(store_ids(&[5]).await, [true]);
        // Reaching above the top from a stored id.
        assert_eq!(store_ids(&[40, 50]).await, [false, true]);
        // Ids out of order and repeated within the call (not a received batch: the parser
        // refuses those, but the script must not store an id twice whatever it is given).
        assert_eq!(store_ids(&[60, 55, 60]).await, [true, true, false]);
        let mut conn = redis.conn().unwrap();
        let members: Vec<String> = redis::cmd("ZRANGE")
            .arg("hub:{gw:veh-h}:ev:location")
            .arg(0)
            .arg(-1)
            .query(&mut conn)
            .unwrap();
        let stored: Vec<u64> = members.iter().map(|m| m[..20].parse().unwrap()).collect();
        assert_eq!(stored, [5, 10, 20, 25, 30, 40, 50, 55, 60], "{members:?}");
        let meta: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
            .arg("hub:{gw:veh-h}:meta")
            .query(&mut conn)
            .unwrap();
        assert_eq!(meta["stored:location"], "9");
        assert_eq!(meta["dups:location"], "7");
        assert_eq!(meta["top:location"], format!("{:020}-{:020}", 60, 0));
    });
}
