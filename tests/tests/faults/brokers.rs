//! The hub broker stopped and restarted; the device broker stopped and restarted (persistence
//! on): Outpost's persistent device session keeps what was queued for it.

use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::common::{secs, Feed, Publisher, Rig, RigOpts};

#[test]
fn acked_events_survive_hub_and_device_broker_restarts() {
    let t = Instant::now();
    let opts = RigOpts {
        uplink_proxy: true,
        ..RigOpts::default()
    };
    let mut rig = Rig::start(opts, |c| c);
    rig.warm_up();
    let feed = Feed::new(&rig.devices.url(), "br", 3);
    let publisher = Publisher::start(feed, 6, Duration::from_millis(25));

    // Hub broker down for 2 s while events flow.
    sleep(Duration::from_secs(1));
    rig.stop_hub_broker();
    sleep(Duration::from_secs(2));
    rig.start_hub_broker();
    sleep(Duration::from_secs(2));

    // Device broker down for 1.5 s. The publisher holds off meanwhile: a device retrying a
    // publish the broker already had would be a device-side duplicate, not the gateway's.
    publisher.pause();
    rig.devices.stop().unwrap();
    sleep(Duration::from_millis(1500));
    rig.devices.start().unwrap();
    publisher.resume();
    sleep(Duration::from_secs(2));

    // Messages queued in Outpost's persistent session while it is down survive a device
    // broker restart.
    publisher.pause();
    rig.outpost.kill9().unwrap();
    let mut queued = Feed::new(&rig.devices.url(), "bq", 2);
    assert!(queued.publish(300), "queued feed not acknowledged");
    rig.devices.stop().unwrap();
    rig.devices.start().unwrap();
    rig.outpost.restart().unwrap();
    publisher.resume();
    sleep(Duration::from_secs(2));

    let feed = publisher.stop();
    rig.finish(
        "broker_restarts",
        &[&feed, &queued],
        Duration::from_secs(60),
    );
    assert!(rig.outpost.is_running(), "outpost exited by itself");
    eprintln!("[broker_restarts] done in {:.1}s", secs(t));
}
