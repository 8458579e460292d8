//! Link outages between gateway and hub (SPEC §5, §6; issue 2): whatever was accepted while the
//! hub was unreachable arrives once the link is back — all of it, in order per class, exactly
//! once as the real hub stored it (its dedup is all that stands between republished batches and
//! doubles). On the wire (a [`WireTap`]: the hub keeps neither) the waiting events are flagged
//! `replay` and go out behind a fresh snapshot.

use std::collections::HashSet;
use std::time::Duration;

use outpost_system_tests::dedup::ArrivalKind;
use outpost_system_tests::{wait_until, Device, GatewayConfig, Rig, WireTap};
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(20);
const USERS: [&str; 3] = ["a", "b", "c"];
const BASE_TST: i64 = 1_700_000_000;

/// What the test published: per report (dev, ts), and the message texts, in publish order.
#[derive(Default)]
struct Published {
    fixes: Vec<(String, String)>,
    texts: Vec<String>,
}

fn rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Published {
    /// Publishes OwnTracks reports `range` (round-robin over three phones, each with battery,
    /// so each gives a location and a status) and one Meshtastic text every tenth report.
    fn publish(&mut self, dev: &Device, range: std::ops::Range<i64>) {
        let mut msgs = Vec::new();
        for i in range {
            let user = USERS[(i % 3) as usize];
            let payload = json!({
                "_type": "location", "lat": 52.0 + i as f64 * 1e-4, "lon": 13.0,
                "tst": BASE_TST + i, "batt": 50,
            });
            msgs.push((format!("owntracks/crew/{user}"), payload.to_string()));
            self.fixes
                .push((format!("crew-{user}"), rfc3339(BASE_TST + i)));
            if i % 10 == 0 {
                let text = format!("report {i}");
                let mesh = json!({
                    "from": 3_664_096_736u32, "id": 5000 + i, "type": "text",
                    "payload": {"text": text}, "timestamp": BASE_TST + i,
                });
                msgs.push(("msh/EU/2/json/LongFast/!0badc0de".into(), mesh.to_string()));
                self.texts.push(text);
            }
        }
        dev.publish_many_qos1(msgs).unwrap();
    }
}

fn config(rig: &Rig) -> GatewayConfig {
    // Small batches and a window of several: an outage catches batches in flight.
    rig.config()
        .mqtt("owntracks")
        .mqtt("meshtastic")
        .batch_max_events(16)
        .inflight(4)
}

/// Waits until the hub stored everything published, then checks it is exactly that, in order.
fn assert_all_arrived_once_in_order(rig: &Rig, p: &Published) {
    let hub = &rig.hub;
    let (nfix, ntext) = (p.fixes.len(), p.texts.len());
    let complete = hub.wait_for(
        |h| {
            h.events_of("location").len() >= nfix
                && h.events_of("status").len() >= nfix
                && h.events_of("message").len() >= ntext
        },
        Duration::from_secs(40),
    );
    assert!(
        complete,
        "hub has {} locations, {} statuses, {} messages of {nfix}/{nfix}/{ntext}",
        hub.events_of("location").len(),
        hub.events_of("status").len(),
        hub.events_of("message").len()
    );
    // Exactly what was accepted, in publish order (one publisher, so one global order).
    for class in ["location", "status"] {
        let got: Vec<(String, String)> = hub
            .events_of(class)
            .iter()
            .map(|e| {
                (
                    e["dev"].as_str().unwrap().into(),
                    e["ts"].as_str().unwrap().into(),
                )
            })
            .collect();
        assert_eq!(
            got, p.fixes,
            "{class}: stored set or order differs from published"
        );
        assert_eq!(rig.accepted(class), nfix as u64, "{class} accepted count");
    }
    let texts: Vec<String> = hub
        .events_of("message")
        .iter()
        .map(|e| e["text"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(texts, p.texts, "messages: stored set or order differs");
    assert_eq!(rig.accepted("message"), ntext as u64);
    // Stored ids strictly increase per class (the dedup rule guarantees it for what it keeps;
    // together with the equality above, nothing was skipped as stale).
    for class in ["location", "status", "message", "presence"] {
        let ids: Vec<_> = hub
            .events_of(class)
            .iter()
            .map(|e| outpost_system_tests::parse_event_id(e["id"].as_str().unwrap()).unwrap())
            .collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "{class} ids not increasing"
        );
    }
    // One online presence per phone and one for the radio: an outage is not the devices' fault.
    let presence = hub.events_of("presence");
    assert_eq!(presence.len(), 4, "{presence:?}");
    assert!(presence.iter().all(|e| e["state"] == "online"));
    assert!(hub.errors().is_empty(), "{:?}", hub.errors());
    println!(
        "hub: {} events found already stored and not stored again",
        hub.duplicates_dropped()
    );
}

/// `replay` of every location/status/message event on the wire (first copy of each id) of the
/// reports `range` (report `i` has `ts` = `BASE_TST + i`).
/// Waits until the tap saw all of them (a location and a status per report, a message every
/// tenth), so no flag is missed.
fn replay_flags(tap: &WireTap, range: std::ops::Range<i64>) -> Vec<Value> {
    let want = range
        .clone()
        .map(|i| if i % 10 == 0 { 3 } else { 2 })
        .sum::<usize>();
    let window: HashSet<String> = range.map(|i| rfc3339(BASE_TST + i)).collect();
    let flags = || -> Vec<Value> {
        ["location", "status", "message"]
            .iter()
            .flat_map(|c| tap.events_of(c))
            .filter(|e| window.contains(e["ts"].as_str().unwrap()))
            .map(|e| e["replay"].clone())
            .collect()
    };
    assert!(
        wait_until(T, || flags().len() >= want),
        "the tap saw {} of {want} events ({} locations; errors {:?})",
        flags().len(),
        tap.events_of("location").len(),
        tap.errors()
    );
    flags()
}

/// After every (re)connect the snapshot reached the hub broker before the first history batch.
fn assert_snapshot_before_history_on_every_connect(tap: &WireTap, min_connects: usize) {
    let orders = tap.connect_orders();
    assert!(orders.len() >= min_connects, "connects seen: {orders:?}");
    for o in &orders {
        assert_ne!(
            o.snapshot_first,
            Some(false),
            "history before snapshot: {orders:?}"
        );
    }
    let last = orders.last().unwrap();
    assert_eq!(last.snapshot_first, Some(true), "{orders:?}");
    let snap = tap.snapshot().unwrap();
    for u in USERS {
        let dev = &snap["devices"][format!("crew-{u}")];
        assert!(
            dev["location"]["lat"].is_number(),
            "snapshot lacks crew-{u}: {snap}"
        );
    }
}

fn wait_uplink(rig: &Rig, state: &str) {
    assert!(
        wait_until(T, || rig.uplink_state().as_deref() == Some(state)),
        "uplink never {state}: {:?}",
        rig.uplink_state()
    );
}

#[test]
fn events_accepted_while_the_hub_link_is_cut_arrive_once_in_order_after_it_returns() {
    let rig = Rig::with_proxy().unwrap();
    let tap = rig.wire_tap().unwrap();
    let _gw = rig.start(&config(&rig)).unwrap();
    let dev = rig.device("crew-phones").unwrap();
    let mut p = Published::default();

    // "Live" means accepted after the uplink session took its replay mark, which it takes
    // before it reports itself up: every report accepted once the state says `up` is live.
    wait_uplink(&rig, "up");
    p.publish(&dev, 0..12);
    assert!(rig.hub.wait_for_events("location", 12, T));
    assert!(tap.wait_for_events("location", 12, T));
    assert!(
        replay_flags(&tap, 0..12).iter().all(|r| r == false),
        "live events are not replays: {:?}",
        replay_flags(&tap, 0..12)
    );

    rig.proxy().cut();
    wait_uplink(&rig, "down");
    p.publish(&dev, 12..200);
    assert!(wait_until(T, || rig.accepted("location") == 200));
    assert_eq!(
        rig.hub.events_of("location").len(),
        12,
        "nothing passes a cut link"
    );
    assert!(
        rig.outbox_len("location") >= 188,
        "the backlog waits in the outbox"
    );

    rig.proxy().pass();
    assert_all_arrived_once_in_order(&rig, &p);
    let flags = replay_flags(&tap, 12..200);
    assert!(
        flags.iter().all(|r| r == true),
        "events that waited must be replays: {flags:?}"
    );
    assert_snapshot_before_history_on_every_connect(&tap, 2);
    assert!(
        wait_until(T, || rig.outbox_len("location") == 0),
        "acked entries are trimmed"
    );
}

#[test]
fn events_accepted_while_the_hub_broker_is_down_arrive_once_in_order_after_it_restarts() {
    let mut rig = Rig::with_proxy().unwrap();
    let tap = rig.wire_tap().unwrap();
    let _gw = rig.start(&config(&rig)).unwrap();
    let dev = rig.device("crew-phones").unwrap();
    let mut p = Published::default();

    p.publish(&dev, 0..9);
    assert!(rig.hub.wait_for_events("location", 9, T));

    rig.stop_hub_broker().unwrap();
    wait_uplink(&rig, "down");
    p.publish(&dev, 9..150);
    assert!(wait_until(T, || rig.accepted("location") == 150));
    std::thread::sleep(Duration::from_secs(1));
    rig.start_hub_broker().unwrap();

    assert_all_arrived_once_in_order(&rig, &p);
    assert!(replay_flags(&tap, 9..150).iter().all(|r| r == true));
    assert_snapshot_before_history_on_every_connect(&tap, 2);
}

#[test]
fn events_sent_into_a_half_open_hub_link_arrive_once_in_order_after_it_recovers() {
    let rig = Rig::with_proxy().unwrap();
    let tap = rig.wire_tap().unwrap();
    let _gw = rig.start(&config(&rig)).unwrap();
    let dev = rig.device("crew-phones").unwrap();
    let mut p = Published::default();

    p.publish(&dev, 0..6);
    assert!(rig.hub.wait_for_events("location", 6, T));

    // A silently dead bearer: batches go out into the void and no PUBACK comes back. The
    // gateway must notice (keep-alive 5 s) and keep the events until the hub has them.
    rig.proxy().pause();
    p.publish(&dev, 6..40);
    wait_uplink(&rig, "down");
    p.publish(&dev, 40..160);
    assert!(wait_until(T, || rig.accepted("location") == 160));
    std::thread::sleep(Duration::from_secs(2));

    // The held bytes of the dead connection are released too: stale republished batches reach
    // the hub, and its dedup rule must be all that is needed.
    rig.proxy().pass();
    assert_all_arrived_once_in_order(&rig, &p);
    assert!(replay_flags(&tap, 40..160).iter().all(|r| r == true));
    assert_snapshot_before_history_on_every_connect(&tap, 2);
}

#[test]
fn after_an_outage_the_backlog_drains_alert_message_presence_status_location_in_that_order() {
    let rig = Rig::with_proxy().unwrap();
    let cfg = config(&rig).mqtt("radio-json");
    let tap = rig.wire_tap().unwrap();
    let _gw = rig.start(&cfg).unwrap();
    // An outage of a link that was up (before its first connect the gateway records no state).
    wait_uplink(&rig, "up");
    rig.proxy().cut();
    wait_uplink(&rig, "down");

    // Published lowest priority first, so any drain order other than by class shows.
    let dev = rig.device("mixed").unwrap();
    let mut p = Published::default();
    p.publish(&dev, 1..40);
    let radio = json!({"ts": BASE_TST, "bat": 40, "rssi": -80, "ch": 2, "sos": true,
                       "gps": {"lat": 52.5, "lon": 13.4}});
    dev.publish_qos1("radios/r9/status", radio.to_string())
        .unwrap();
    p.publish(&dev, 40..41);
    let texts = p.texts.len() as u64;
    assert!(wait_until(T, || rig.accepted("alert") == 1
        && rig.accepted("message") == texts));

    rig.proxy().pass();
    assert!(rig.hub.wait_for_events("location", 41, T));
    assert!(rig.hub.wait_for_events("alert", 1, T));
    // The order is the wire's: batches as the gateway sent them after the reconnect.
    assert!(tap.wait_for_events("location", 41, T));
    let tl = tap.timeline();
    let reconnect = tl
        .iter()
        .rposition(|a| {
            !a.retained && matches!(&a.kind, ArrivalKind::State { state, .. } if state == "online")
        })
        .unwrap();
    let mut first_seen: Vec<String> = Vec::new();
    for a in &tl[reconnect..] {
        if let ArrivalKind::Batch { class, .. } = &a.kind {
            if !first_seen.contains(class) {
                first_seen.push(class.clone());
            }
        }
    }
    assert_eq!(
        first_seen,
        ["alert", "message", "presence", "status", "location"],
        "drain order after reconnect"
    );
    let alerts = rig.hub.alerts();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["reason"], "emergency");
    assert_eq!(alerts[0]["dev"], "r9");
    assert_eq!(alerts[0]["gw"], outpost_system_tests::GW);
}
