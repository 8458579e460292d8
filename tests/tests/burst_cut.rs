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

use outpost_system_tests::{Rig, TcpProxy};
use serde_json::json;

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
    let msgs: Vec<(String, String)> = (0..N)
        .map(|i| {
            let user = ["a", "b", "c", "d"][(i % 4) as usize];
            let p = json!({"_type": "location", "lat": 45.0 + i as f64 * 1e-6, "lon": 7.0, "tst": 1_700_000_000 + i});
            (format!("owntracks/burst/{user}"), p.to_string())
        })
        .collect();
    dev.publish_many_qos1(msgs).unwrap();
    gw.restart().unwrap();
    // Cut while the burst comes in, eight times (the gateway reconnects within its backoff).
    for wait in [300, 250, 250, 250, 250, 250, 250, 250] {
        std::thread::sleep(Duration::from_millis(wait));
        link.cut();
        std::thread::sleep(Duration::from_millis(150));
        link.pass();
    }
    // Every input, counted once however often it was stored (copies must not hide a loss).
    let distinct = |h: &outpost_system_tests::Hub| {
        let evs = h.events_of("location");
        let keys: std::collections::HashSet<String> = evs
            .iter()
            .map(|e| format!("{}|{}", e["dev"], e["ts"]))
            .collect();
        keys.len() as i64
    };
    let ok = rig
        .hub
        .wait_for(|h| distinct(h) >= N, Duration::from_secs(180));
    std::thread::sleep(Duration::from_secs(2));
    let got = rig.hub.events_of("location");
    let log = gw.log();
    assert!(
        ok,
        "{} of {N} inputs arrived; log:\n{log}",
        distinct(&rig.hub)
    );
    // Per input (device, ts): the (id, rx) of each copy stored.
    let mut seen = std::collections::HashMap::<(String, String), Vec<(String, String)>>::new();
    for e in &got {
        seen.entry((e["dev"].to_string(), e["ts"].to_string()))
            .or_default()
            .push((e["id"].to_string(), e["rx"].to_string()));
    }
    let mut twice: Vec<_> = seen.iter().filter(|(_, c)| c.len() > 1).collect();
    twice.sort();
    assert_eq!(
        got.len() as i64,
        N,
        "not exactly once: {} distinct inputs, {} stored more than once, e.g. {:?}\nlog:\n{log}",
        seen.len(),
        twice.len(),
        &twice[..twice.len().min(12)]
    );
    assert!(
        log.contains("device broker connection failed"),
        "the cuts did not reach the gateway; log:\n{log}"
    );
    for user in ["a", "b", "c", "d"] {
        let mine: Vec<&serde_json::Value> = got
            .iter()
            .filter(|e| e["dev"] == format!("burst-{user}"))
            .collect();
        assert_eq!(mine.len() as i64, N / 4);
        let back = mine
            .windows(2)
            .position(|w| w[0]["ts"].as_str() >= w[1]["ts"].as_str());
        assert!(
            back.is_none(),
            "per-device order: burst-{user} at {back:?}: {:?}\nlog:\n{log}",
            back.map(|i| &mine[i.saturating_sub(2)..(i + 4).min(mine.len())])
        );
    }
}
