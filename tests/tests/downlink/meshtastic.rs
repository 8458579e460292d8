//! Meshtastic radios: sendtext to an online radio, fan-out, too long; offline radios wait, in order, or expire.

use crate::common::*;
use outpost_system_tests::{wait_until, Rig, Sniffer};

#[test]
fn message_to_an_online_meshtastic_radio_is_a_sendtext_and_the_hub_sees_sent() {
    let rig = Rig::new().unwrap();
    let dir = profiles("1h");
    let (_gw, _) = start(&rig, &dir);
    let sniff = Sniffer::start(&rig.devices.url(), "sniff", DOWN_TOPIC).unwrap();
    online(&rig, 42, 1);
    online(&rig, 43, 2);
    down(&rig, "m-1", "!0000002a", "Evacuate sector 4", 3600);
    wait_states(&rig, "m-1", &["queued", "sent"]);
    let want = format!(
        r#"{{"from":{GATEWAY_NODE},"to":42,"type":"sendtext","payload":"Evacuate sector 4"}}"#
    );
    assert_eq!(sniff.payloads(), [want]);
    // "*": one sendtext and one receipt per text-capable device.
    down(&rig, "m-all", "*", "All units: report", 3600);
    assert!(
        wait_until(T, || states_of(&rig, "m-all").len() == 4),
        "{:?}",
        receipts(&rig)
    );
    let mut per_dev: Vec<(String, String)> = receipts(&rig)
        .into_iter()
        .filter(|r| r.0 == "m-all")
        .map(|r| (r.1, r.2))
        .collect();
    per_dev.sort();
    assert_eq!(
        per_dev,
        [
            ("!0000002a", "queued"),
            ("!0000002a", "sent"),
            ("!0000002b", "queued"),
            ("!0000002b", "sent")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let got = parsed(&sniff);
    assert!(
        got.contains(&sendtext(42, "All units: report"))
            && got.contains(&sendtext(43, "All units: report"))
    );
    // Too long for the mesh: refused at once.
    down(&rig, "m-long", "!0000002a", &"x".repeat(234), 3600);
    wait_states(&rig, "m-long", &["failed"]);
    assert_eq!(
        receipts(&rig).iter().find(|r| r.0 == "m-long").unwrap().3,
        "too_long"
    );
    // The gateway hears its own sendtext on msh/US/2/json/mqtt/ (ingest filter msh/+/2/json/#).
    assert!(
        rig.drops().is_empty(),
        "its own downlink read as input: {:?}",
        rig.drops()
    );
    assert_eq!(rig.hub.errors(), Vec::<String>::new());
}

#[test]
fn message_to_an_offline_radio_waits_and_goes_in_order_when_it_reports_or_expires() {
    let rig = Rig::new().unwrap();
    let dir = profiles("2s");
    let (gw, _) = start(&rig, &dir);
    let sniff = Sniffer::start(&rig.devices.url(), "sniff", DOWN_TOPIC).unwrap();
    online(&rig, 42, 1);
    online(&rig, 44, 2);
    let offline = |dev: &str| {
        rig.hget(&format!("outpost:dev:{dev}"), "presence")
            .as_deref()
            == Some("offline")
    };
    assert!(
        wait_until(T, || offline("!0000002a") && offline("!0000002c")),
        "{}",
        gw.log()
    );
    down(&rig, "w-1", "!0000002a", "first", 3600);
    down(&rig, "w-2", "!0000002a", "second", 3600);
    down(&rig, "w-exp", "!0000002c", "too late", 2);
    wait_states(&rig, "w-1", &["queued"]);
    wait_states(&rig, "w-2", &["queued"]);
    let status = gw.cli(&["status"]).unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("Messages pending: 3") && text.contains("w-2"),
        "{text}"
    );
    // The 2 s message expires while its radio stays silent.
    wait_states(&rig, "w-exp", &["queued", "expired"]);
    assert!(
        sniff.payloads().is_empty(),
        "sent to an offline radio: {:?}",
        sniff.payloads()
    );
    online(&rig, 42, 3);
    wait_states(&rig, "w-1", &["queued", "sent"]);
    wait_states(&rig, "w-2", &["queued", "sent"]);
    assert_eq!(
        parsed(&sniff),
        [sendtext(42, "first"), sendtext(42, "second")]
    );
}
