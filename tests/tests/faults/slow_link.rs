//! A satellite-like link (600 ms each way): throughput comes from the in-flight window, not
//! from waiting for one PUBACK at a time.

use std::time::{Duration, Instant};

use outpost_system_tests::wait_until;

use crate::common::{secs, Feed, Rig, RigOpts};

const ONE_WAY: Duration = Duration::from_millis(600);
const BATCH: u32 = 16;
const INFLIGHT: u32 = 8;
const BACKLOG: u64 = 2000;

#[test]
fn slow_link_throughput_comes_from_the_inflight_window() {
    let t = Instant::now();
    // Delivery is checked at the real hub (`finish`); the drain rate needs each batch's arrival
    // time on the wire, which only the tap records.
    let opts = RigOpts {
        uplink_proxy: true,
        wire_tap: true,
        ..RigOpts::default()
    };
    let rig = Rig::start(opts, |c| c.batch_max_events(BATCH).inflight(INFLIGHT));
    rig.warm_up();

    // The backlog waits in the outbox while the hub is unreachable.
    rig.uplink().cut();
    let base = rig.accepted("location");
    let mut feed = Feed::new(&rig.devices.url(), "sl", 4);
    for _ in 0..BACKLOG / 100 {
        assert!(feed.publish(100));
    }
    assert!(
        wait_until(Duration::from_secs(30), || rig.accepted("location")
            >= base + BACKLOG),
        "backlog not accepted"
    );
    let batches_before = rig.tap().batches().len();
    rig.uplink().set_delay(ONE_WAY);
    rig.uplink().pass();
    let tally = rig.finish("slow_link", &[&feed], Duration::from_secs(90));

    // Drain rate, from the first backlog batch at the hub to the last.
    let owned = |b: &outpost_system_tests::dedup::RawBatch| {
        b.payload["events"].as_array().is_some_and(|es| {
            es.iter()
                .any(|e| e["dev"].as_str().is_some_and(|d| feed.owns(d)))
        })
    };
    let drain: Vec<_> = rig.tap().batches()[batches_before..]
        .iter()
        .filter(|b| owned(b))
        .cloned()
        .collect();
    let (first, last) = (drain.first().unwrap(), drain.last().unwrap());
    let first_len = first.payload["events"].as_array().map_or(0, Vec::len);
    let span = last.at.duration_since(first.at).as_secs_f64();
    let rtt = 2.0 * ONE_WAY.as_secs_f64();
    let per_rtt = (tally.delivered - first_len) as f64 / (span / rtt);
    eprintln!(
        "[slow_link] {} events in {} batches over {span:.1}s at RTT {rtt:.1}s: {per_rtt:.0} events per RTT \
         (one batch = {BATCH}, window = {INFLIGHT} batches = {} events); done in {:.1}s",
        tally.delivered,
        drain.len(),
        BATCH * INFLIGHT,
        secs(t)
    );
    assert!(
        per_rtt > 2.0 * BATCH as f64,
        "drain is not windowed: {per_rtt:.0} events per RTT, one batch is {BATCH}"
    );
}
