//! The burst of `burst.rs` (20,000 inputs queued in the persistent session, the hold lowered
//! so the gateway also sets inputs aside), with the device broker link cut under it eight
//! times. A connection lost while acknowledgements are queued or on the wire loses them
//! (rumqttc drops queued ones, the cut drops the rest), and the broker redelivers those inputs,
//! perhaps behind thousands of others. Each must still be stored once, in order.
//!
//! A redelivery is recognised by its packet id however late it comes (`IngestItem::slot`);
//! before that the store checked only the last 8,192 input hashes, and with debug binaries this
//! test stored inputs twice in 2 of 8 runs (1,023 and 7,907 of 20,000). `redelivery.rs` makes
//! each case of the check on purpose.
//!
//! It also broke one phone's order in 4 of 38 runs (exactly once held in all): right after a
//! reconnect a few inputs from far later in the burst were stored ahead of thousands set aside
//! before them. mosquitto's log (`log_type debug`) showed it sending every connection's
//! packet ids in order and the gateway acknowledging packet id 8,160 right behind 7,516: rumqttc
//! keeps the publishes it read in the batch that ended with the connection error and hands them
//! out after the next CONNACK, when nothing is set aside any more. The device source now drops
//! them (`outpost::util::stale`) and the broker redelivers them in order: 40 of 40 runs passed
//! (4 of the first 25 with such publishes dropped).

use std::net::SocketAddr;
use std::time::Duration;

use outpost_system_tests::{burst, Rig, TcpProxy};

const N: i64 = 20_000;

#[test]
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
