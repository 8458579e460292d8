//! A try made again after its reply was lost (a Redis response timeout, a dropped
//! connection, after the script ran): the hub's store gives the first try's answer to the
//! same attempt, so what that try stored is still reported new — streamed, fed to TAK, its
//! receipts applied — and answers a republished batch afresh (duplicates). Driven in-process
//! through the hub's own `Store`: a lost reply cannot be made to happen on cue through the
//! binary.

use crate::{batch, loc, store_on_fresh_redis};

#[test]
fn a_try_after_a_lost_reply_gets_the_first_answer_and_a_republished_batch_gets_duplicates() {
    let (redis, rt, store) = store_on_fresh_redis();
    rt.block_on(async {
        let parse = |evs: &[serde_json::Value]| {
            let p = batch("veh-r", "location", evs);
            outpost_proto::batch::parse("veh-r", "location", p.as_bytes(), 1 << 20).unwrap()
        };
        let ts = "2026-11-30T12:00:00.000Z";
        let b = parse(&[loc(10, "u9", 1.0, 2.0, ts), loc(11, "u9", 1.1, 2.1, ts)]);
        assert_eq!(store.store_batch(&b, "r1:1:1").await.unwrap(), [true, true]);
        // The same attempt again: its first call stored both.
        assert_eq!(store.store_batch(&b, "r1:1:1").await.unwrap(), [true, true]);
        // Another attempt with the same batch (republished, redelivered): duplicates.
        assert_eq!(
            store.store_batch(&b, "r1:1:2").await.unwrap(),
            [false, false]
        );
        assert_eq!(
            store.store_batch(&b, "r2:5:1").await.unwrap(),
            [false, false]
        );
        // A batch cut differently around a new event: only the new one is new.
        let c = parse(&[loc(11, "u9", 1.1, 2.1, ts), loc(12, "u9", 1.2, 2.2, ts)]);
        assert_eq!(
            store.store_batch(&c, "r1:1:3").await.unwrap(),
            [false, true]
        );
        // Stored once each, whatever the answers said.
        let mut conn = redis.conn().unwrap();
        let n: u64 = redis::cmd("ZCARD")
            .arg("hub:{gw:veh-r}:ev:location")
            .query(&mut conn)
            .unwrap();
        assert_eq!(n, 3);
    });
}
