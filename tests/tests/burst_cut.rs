//! The burst of `burst.rs` (20,000 inputs queued in the persistent session, the hold lowered
//! so the gateway also sets inputs aside), with the device broker link cut under it eight
//! times. A connection lost while acknowledgements are queued or on the wire loses them
//! (rumqttc drops queued ones, the cut drops the rest), and the broker redelivers those inputs,
//! perhaps behind thousands of others. Each must still be stored once, in order.
//!
//! **Known to fail, so ignored** (`cargo test -p outpost-system-tests --test burst_cut --
//! --ignored`): with debug binaries, 2 of 8 runs stored inputs twice (1,023 and 7,907 of
//! 20,000), where the build before 7e4de60 failed 8 of 8 (duplicates or per-device order);
//! with release binaries both passed 6 of 6. A redelivery that comes back after more than the
//! 8,192 inputs the store's recent-input check holds is stored again (docs/guarantees.md,
//! "The redelivery window"); under set-aside cycles and cuts it can come back much later.

use std::net::SocketAddr;
use std::time::Duration;

use outpost_system_tests::{burst, Rig, TcpProxy};

const N: i64 = 20_000;

#[test]
#[ignore = "known to fail: a redelivery later than the recent-input check's 8,192 inputs is stored twice"]
fn cuts_of_the_device_link_under_a_burst_store_every_input_once_in_order() {
    // Inherited by the gateway (this file's only test).
    std::env::set_var("OUTPOST_HELD_MAX_BYTES", (256 << 10).to_string());
    let rig = Rig::new().unwrap();
    let broker: SocketAddr = ([127, 0, 0, 1], rig.devices.port()).into();
    let link = TcpProxy::start(broker).unwrap();
    let mut cfg = rig.config().mqtt("owntracks").batch_max_events(256);
    cfg.devices_url = format!("mqtt://127.0.0.1:{}", link.port());
    let mut gw = rig.start(&cfg).unwrap();
    assert!(gw.terminate().unwrap().success());
    let dev = rig.device("burst").unwrap();
    dev.publish_many_qos1(burst::messages(N)).unwrap();
    gw.restart().unwrap();
    // Cut while the burst comes in, eight times (the gateway reconnects within its backoff).
    for wait in [300, 250, 250, 250, 250, 250, 250, 250] {
        std::thread::sleep(Duration::from_millis(wait));
        link.cut();
        std::thread::sleep(Duration::from_millis(150));
        link.pass();
    }
    let got = burst::arrived(&rig.hub, N, || gw.log());
    let log = gw.log();
    burst::assert_once_in_order(&got, N, &log);
    assert!(
        log.contains("device broker connection failed"),
        "the cuts did not reach the gateway; log:\n{log}"
    );
}
