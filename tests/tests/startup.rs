//! Start order does not matter (SPEC §2): Redis or a broker being down when `outpost run`
//! starts is not fatal — it says so, retries with backoff, and works once they are up.

use std::time::Duration;

use outpost_system_tests::{wait_until, Outpost, Rig};

const T: Duration = Duration::from_secs(20);
const FIX: &str = r#"{"_type":"location","lat":47.3,"lon":8.5,"tst":1700000000}"#;

#[test]
fn outpost_started_before_redis_retries_and_works_once_redis_is_up() {
    let mut rig = Rig::new().unwrap();
    rig.redis.stop().unwrap();
    let cfg = rig.config().mqtt("owntracks");
    let mut gw = Outpost::start_with(&cfg).unwrap();
    assert!(
        gw.wait_for_log("retrying", T),
        "no retry message:\n{}",
        gw.log()
    );
    let log = gw.log().to_lowercase();
    assert!(
        log.contains("redis"),
        "the retry message names redis:\n{log}"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert!(gw.is_running(), "redis down is not fatal:\n{}", gw.log());

    rig.redis.restart().unwrap();
    rig.wait_subscribed(&gw, &cfg, 0).unwrap();
    let phone = rig.device("phone").unwrap();
    phone.publish_qos1("owntracks/late/phone", FIX).unwrap();
    assert!(
        rig.hub.wait_for_events("location", 1, T),
        "nothing reached the hub\n{}",
        gw.log()
    );
}

#[test]
fn outpost_started_before_the_device_broker_retries_and_works_once_it_is_up() {
    let mut rig = Rig::new().unwrap();
    rig.devices.stop().unwrap();
    let cfg = rig.config().mqtt("owntracks");
    let mut gw = Outpost::start_with(&cfg).unwrap();
    assert!(
        gw.wait_for_log("device broker connection failed", T),
        "no retry message:\n{}",
        gw.log()
    );
    assert!(gw.is_running());

    rig.devices.start().unwrap();
    rig.wait_subscribed(&gw, &cfg, 0).unwrap();
    let phone = rig.device("phone").unwrap();
    phone.publish_qos1("owntracks/late/phone", FIX).unwrap();
    assert!(rig.hub.wait_for_events("location", 1, T), "{}", gw.log());
}

#[test]
fn outpost_started_before_the_hub_broker_keeps_events_and_delivers_them_once_it_is_up() {
    let mut rig = Rig::with_proxy().unwrap();
    // `replay` is not stored at the hub: the wire shows it.
    let tap = rig.wire_tap().unwrap();
    rig.stop_hub_broker().unwrap();
    let cfg = rig.config().mqtt("owntracks");
    let mut gw = rig.start(&cfg).unwrap();
    let phone = rig.device("phone").unwrap();
    phone.publish_qos1("owntracks/late/phone", FIX).unwrap();
    assert!(wait_until(T, || rig.accepted("location") == 1));
    assert!(gw.is_running());

    rig.start_hub_broker().unwrap();
    assert!(
        rig.hub.wait_for_events("location", 1, T),
        "{}\n--- hub ---\n{}",
        gw.log(),
        rig.hub.log()
    );
    assert!(tap.wait_for_events("location", 1, T));
    assert_eq!(
        tap.events_of("location")[0]["replay"],
        true,
        "it waited in the outbox"
    );
}
