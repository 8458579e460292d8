//! A hub link that goes silent without closing (half-open TCP): detected within about
//! 1.5 × keep-alive, reconnected, unacknowledged batches republished.

use std::thread::sleep;
use std::time::{Duration, Instant};

use outpost_system_tests::wait_until;

use crate::common::{secs, Feed, Publisher, Rig, RigOpts};

const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// Log lines that say the uplink gave up on its connection.
fn detections(rig: &Rig) -> usize {
    rig.log_count("hub silent") + rig.log_count("uplink down")
}

#[test]
fn half_open_hub_link_is_detected_and_unacked_batches_republished() {
    let t = Instant::now();
    let opts = RigOpts {
        uplink_proxy: true,
        ..RigOpts::default()
    };
    let rig = Rig::start(opts, |c| c.keep_alive("5s").batch_max_events(16));
    rig.warm_up();
    let feed = Feed::new(&rig.devices.url(), "ho", 2);
    let publisher = Publisher::start(feed, 4, Duration::from_millis(40));
    sleep(Duration::from_secs(1));

    let (before, connects) = (detections(&rig), rig.log_count("uplink connected"));
    let paused_at = Instant::now();
    rig.uplink().pause();
    let detected = wait_until(KEEP_ALIVE * 3, || detections(&rig) > before);
    let detection = paused_at.elapsed();
    eprintln!(
        "[half_open] black hole at {:.1}s; detected={detected} after {:.2}s (keep_alive {:?}; issue target ≈ 1.5 × keep_alive = {:?})",
        secs(t),
        detection.as_secs_f64(),
        KEEP_ALIVE,
        KEEP_ALIVE * 3 / 2
    );
    assert!(
        detected,
        "half-open hub link not detected within 3 × keep_alive\n{}",
        rig.outpost.log()
    );
    let line = rig
        .outpost
        .log()
        .lines()
        .rfind(|l| l.contains("hub silent") || l.contains("uplink down"))
        .unwrap_or_default()
        .to_string();
    eprintln!("[half_open] detection line: {line}");

    // The link stays dead a little longer (a reconnect attempt disappears into it too), then
    // comes back: a new connection gets through.
    sleep(Duration::from_secs(1));
    rig.uplink().pass();
    assert!(
        wait_until(Duration::from_secs(30), || rig
            .log_count("uplink connected")
            > connects),
        "no reconnect after the link came back\n{}",
        rig.outpost.log()
    );
    sleep(Duration::from_secs(1));
    let feed = publisher.stop();
    let tally = rig.finish("half_open", &[&feed], Duration::from_secs(60));
    eprintln!(
        "[half_open] events the hub found already stored (republished batches): {}; done in {:.1}s",
        tally.hub_duplicates,
        secs(t)
    );
    assert!(tally.delivered > 0);
}
