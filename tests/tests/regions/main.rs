//! Several regions (SPEC §9, issue 11): one gateway with two `[[uplink]]` regions, each a real
//! mosquitto + redis-server + `outpost-hub`, the gateway reaching each through a `TcpProxy`
//! (a fault on one region only, and a stable address while a lost region is rebuilt).
//! Each test prints its tallies (accepted / at A / at B / after sync / lost).

mod rig;

use outpost_system_tests::{wait_until, Device, HubApi};
use rig::*;
use std::time::Duration;

#[test]
fn a_lost_region_is_rebuilt_and_synced_from_the_other() {
    let (mut a, b) = (Region::new("a"), Region::new("b"));
    let gw = Gateway::new(&[&a, &b], "6h");
    let out = gw.start();
    gw.wait_up(&["a", "b"]);
    let phone = Device::connect(&gw.devices.url(), "alice-phone").unwrap();
    publish(&phone, 0, 20);
    assert!(wait_until(T, || a.count("location") == 20 && b.count("location") == 20));
    a.lose();
    publish(&phone, 20, 30);
    assert!(
        wait_until(T, || b.count("location") == 50),
        "B missed live traffic while A was lost"
    );
    let at_b = total(&b.events());
    assert_exactly_once(&b.events(), "B");
    assert_eq!(
        at_b as u64,
        gw.total_accepted(),
        "B has every accepted event"
    );
    a.rebuild();
    publish(&phone, 50, 10);
    wait_drained(&gw, &out);
    let at_a = total(&a.events());
    let report = sync(&b, &a);
    let after = assert_converged(&gw, &a, &b);
    let accepted = gw.total_accepted();
    eprintln!(
        "tallies (lost region): accepted {accepted} / at A {at_a} (rebuilt, before sync) / at B {} / after sync {after} / lost {}; sync: {}",
        total(&b.events()),
        accepted as usize - after,
        report.trim()
    );
    assert!(at_a < after, "A was rebuilt empty: sync had to copy");
    assert!(
        sync(&b, &a).contains(" 0 copied"),
        "second sync copies nothing"
    );
}

#[test]
fn a_region_down_past_max_lag_stops_holding_the_outbox() {
    let (a, b) = (Region::new("a"), Region::new("b"));
    let mut gw = Gateway::new(&[&a, &b], "2s");
    let port = outpost_system_tests::free_port();
    gw.cfg = gw.cfg.clone().ops_listen(&format!("127.0.0.1:{port}"));
    let out = gw.start();
    gw.wait_up(&["a", "b"]);
    let phone = Device::connect(&gw.devices.url(), "alice-phone").unwrap();
    publish(&phone, 0, 5);
    assert!(wait_until(T, || a.count("location") == 5 && b.count("location") == 5));
    a.proxy.cut();
    assert!(wait_until(T, || gw.region_state("a").as_deref() == Some("down")));
    publish(&phone, 5, 10);
    assert!(wait_until(T, || b.count("location") == 15));
    // Once A's oldest unacknowledged event is older than max_lag (2 s), B's next
    // acknowledgements trim past it: the outbox empties although A has nothing.
    std::thread::sleep(Duration::from_millis(2500));
    publish(&phone, 15, 5);
    assert!(
        wait_until(T, || gw.hash("outpost:uplink:a").contains_key("lagging")
            && gw.outbox_len() == 0),
        "outbox still held for A: {} entries; {:?}",
        gw.outbox_len(),
        gw.hash("outpost:uplink:a")
    );
    assert_eq!(b.count("location"), 20);
    // And it does not grow for A any more: more traffic is trimmed as B takes it.
    publish(&phone, 20, 5);
    assert!(wait_until(T, || b.count("location") == 25 && gw.outbox_len() == 0));
    let i = 25;
    let missed: u64 = gw.hash("outpost:stats")["missed:a"].parse().unwrap();
    assert!(missed > 0);
    assert!(out.wait_for_log("region lags longer than max_lag", T));
    let status = out.cli(&["status"]).unwrap();
    let status = String::from_utf8_lossy(&status.stdout).to_string();
    assert!(
        status.contains("region a: down") && status.contains("LAGGING"),
        "{status}"
    );
    let metrics_missed = gw.hash("outpost:uplink:a")["missed"].clone();
    let m = HubApi::new(&format!("http://{}", gw.cfg.ops_listen.as_deref().unwrap()))
        .text("/metrics")
        .unwrap();
    assert!(
        m.contains(&format!(
            "outpost_uplink_region_missed_total{{region=\"a\"}} {metrics_missed}"
        )),
        "{m}"
    );
    assert!(
        m.contains("outpost_uplink_region_up{region=\"b\"} 1"),
        "{m}"
    );
    a.proxy.pass();
    assert!(
        wait_until(T, || gw.region_state("a").as_deref() == Some("up")
            && !gw.hash("outpost:uplink:a").contains_key("lagging")),
        "A back, not lagging"
    );
    publish(&phone, i, 3);
    assert!(
        wait_until(T, || a.count("location") == 5 + 3),
        "A gets live traffic again"
    );
    wait_drained(&gw, &out);
    let (at_a, at_b) = (total(&a.events()), total(&b.events()));
    sync(&b, &a);
    let after = assert_converged(&gw, &a, &b);
    let accepted = gw.total_accepted();
    eprintln!(
        "tallies (max_lag): accepted {accepted} / at A {at_a} (missed {metrics_missed}) / at B {at_b} / after sync {after} / lost {}",
        accepted as usize - after
    );
}

#[test]
fn a_killed_gateway_resumes_each_region_at_its_own_cursor() {
    let (a, b) = (Region::new("a"), Region::new("b"));
    let gw = Gateway::new(&[&a, &b], "6h");
    let mut out = gw.start();
    gw.wait_up(&["a", "b"]);
    let phone = Device::connect(&gw.devices.url(), "alice-phone").unwrap();
    publish(&phone, 0, 10);
    assert!(wait_until(T, || a.count("location") == 10 && b.count("location") == 10));
    a.proxy.pause(); // black hole: A's session hangs with batches unacknowledged
    publish(&phone, 10, 20);
    assert!(wait_until(T, || b.count("location") == 30));
    let cur = |n: &str| {
        gw.hash(&format!("outpost:uplink:{n}"))
            .remove("acked:location")
    };
    assert!(wait_until(T, || cur("b") != cur("a")), "cursors equal");
    let (ca, cb) = (cur("a"), cur("b"));
    out.kill9().unwrap();
    assert_eq!(
        (cur("a"), cur("b")),
        (ca.clone(), cb.clone()),
        "cursors survive kill -9"
    );
    publish(&phone, 30, 5); // kept by the device broker's session meanwhile
    a.proxy.pass();
    out.restart().unwrap();
    // The last 5 come from the device broker after the restart (and may wait for company,
    // ingest's linger): the outbox may look drained before they are in it.
    assert!(wait_until(T, || gw
        .hash("outpost:stats")
        .get("accepted:location")
        .map(String::as_str)
        == Some("35")));
    wait_drained(&gw, &out);
    let accepted = gw.total_accepted();
    // The outbox drains on the hub broker's PUBACK; each receiver stores right after.
    wait_until(T, || {
        total(&a.events()) as u64 >= accepted && total(&b.events()) as u64 >= accepted
    });
    let (at_a, at_b) = (total(&a.events()), total(&b.events()));
    assert_exactly_once(&a.events(), "A");
    assert_exactly_once(&b.events(), "B");
    for c in CLASSES {
        assert_eq!(
            a.events()[c],
            b.events()[c],
            "{c}: both regions complete without sync"
        );
    }
    eprintln!(
        "tallies (gateway kill -9, cursors a={ca:?} b={cb:?}): accepted {accepted} / at A {at_a} / at B {at_b} / after sync (none needed) {at_a} / lost {}",
        accepted as usize - at_a.min(at_b)
    );
    assert_eq!(at_a as u64, accepted);
    assert_eq!(at_b as u64, accepted);
}

#[test]
fn a_slow_region_does_not_slow_the_other() {
    let (a, b) = (Region::new("a"), Region::new("b"));
    let gw = Gateway::new(&[&a, &b], "6h");
    // One batch in flight each: the slow link's round trips pace its drain.
    let mut cfg = gw.cfg.clone();
    cfg = cfg.inflight(1).batch_max_events(1);
    let gw = Gateway { cfg, ..gw };
    let out = gw.start();
    gw.wait_up(&["a", "b"]);
    a.proxy.set_delay(Duration::from_millis(600));
    let phone = Device::connect(&gw.devices.url(), "alice-phone").unwrap();
    publish(&phone, 0, 40);
    assert!(
        wait_until(T, || b.count("location") == 40),
        "fast region B lacks the burst"
    );
    let at_a = a.count("location");
    let at_b = b.count("location");
    eprintln!(
        "tallies (600 ms on A): burst of 40 fixes: B has {at_b} locations while A has {at_a}"
    );
    assert!(
        at_a < 40,
        "A should still have a backlog at that point (600 ms per batch)"
    );
    a.proxy.set_delay(Duration::ZERO);
    wait_drained(&gw, &out);
    let after = assert_converged(&gw, &a, &b);
    eprintln!(
        "tallies (600 ms on A): accepted {} / at A {at_a}→{after} / at B {} / after sync (none) {after} / lost 0",
        gw.total_accepted(),
        total(&b.events())
    );
}
