//! `kill -9` of Redis (AOF, `appendfsync always`) mid-ingest and mid-drain, restarted from its
//! AOF: Outpost reconnects and carries on; ids keep rising across the restart.

use std::thread::sleep;
use std::time::{Duration, Instant};

use outpost_system_tests::wait_until;

use crate::common::{rng_from_env, secs, Feed, Publisher, Rig, RigOpts, CLASSES, GW};

/// Kills Redis, waits `down`, restarts it; checks no stream's last id went back.
fn kill_and_restart(rig: &mut Rig, down: Duration) {
    let before: Vec<_> = CLASSES.iter().map(|c| rig.last_generated_id(c)).collect();
    rig.redis.kill9().unwrap();
    sleep(down);
    rig.redis.restart().unwrap();
    for (c, b) in CLASSES.iter().zip(before) {
        let after = rig.last_generated_id(c);
        assert!(
            after >= b,
            "outbox:{c} last id went back across the Redis restart: {b} -> {after}"
        );
    }
}

#[test]
fn acked_events_survive_redis_kill9_and_ids_keep_rising() {
    let t = Instant::now();
    let mut rng = rng_from_env("kill9_redis", 0x0F2_u64);
    let opts = RigOpts {
        uplink_proxy: true,
        ..RigOpts::default()
    };
    let mut rig = Rig::start(opts, |c| c.batch_max_events(16).inflight(2));
    rig.warm_up();
    let feed = Feed::new(&rig.devices.url(), "rk", 3);
    let publisher = Publisher::start(feed, 6, Duration::from_millis(20));

    // Mid-ingest (the uplink is live too).
    for _ in 0..3 {
        sleep(rng.millis(300, 1000));
        let down = rng.millis(200, 1500);
        kill_and_restart(&mut rig, down);
    }
    // Mid-drain: a backlog builds while the hub is unreachable; kill Redis once the hub has
    // started receiving it.
    let mut backlog = Vec::new();
    for _ in 0..2 {
        rig.uplink().cut();
        sleep(Duration::from_millis(2500));
        let seen = rig.hub.events_for(GW, "location").len();
        rig.uplink().set_delay(Duration::from_millis(50));
        rig.uplink().pass();
        assert!(
            wait_until(Duration::from_secs(20), || rig
                .hub
                .events_for(GW, "location")
                .len()
                > seen),
            "drain did not start; outpost's log:\n{}",
            rig.outpost.log()
        );
        sleep(rng.millis(100, 500));
        backlog.push(rig.outbox_len("location"));
        kill_and_restart(&mut rig, Duration::from_secs(1));
    }
    eprintln!("[kill9_redis] location backlog at the drain-phase kills: {backlog:?}");
    let feed = publisher.stop();
    rig.uplink().set_delay(Duration::ZERO);
    rig.finish("kill9_redis", &[&feed], Duration::from_secs(60));
    assert!(rig.outpost.is_running(), "outpost exited by itself");
    eprintln!("[kill9_redis] done in {:.1}s", secs(t));
}
