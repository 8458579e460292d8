//! A Meshtastic radio on USB (SPEC §8 `meshtastic-serial`, issue 13): messages to a node the
//! radio heard go from the hub's `down` topic (and `outpost send`) through the real `outpost`
//! to a scripted pseudo-terminal radio ([`outpost_system_tests::mesh_radio`]) as `ToRadio`
//! texts with `want_ack`; the radio's routing ack is `delivered`, its NAK `failed` with the
//! mesh's reason, silence `sent`. Unplugged, the radio's messages wait and go to it, once,
//! after the replug.

use crate::common::*;
use outpost_system_tests::mesh_radio::MeshRadio;
use outpost_system_tests::{pty::Pty, wait_until, ProfileDir, Rig};
use std::path::Path;

const RADIO_NODE: u32 = 0xda65_6a30;
/// A node in the radio's fixture packets (it reports a position, telemetry and a text).
const NODE: &str = "!da65ade0";
const NODE_NUM: u32 = 0xda65_ade0;

fn packets() -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../gateway/tests/fixtures/meshtastic/packets.bin");
    std::fs::read(p).expect("fixture")
}

/// The shipped profiles, the radio's with a 1 s heartbeat and a 1 s ack timeout.
fn radio_profiles() -> ProfileDir {
    let dir = ProfileDir::copy().unwrap();
    let path = dir.file("meshtastic-serial");
    let shipped = std::fs::read_to_string(&path).unwrap();
    let text = shipped
        .replace(r#"heartbeat = "30s""#, r#"heartbeat = "1s""#)
        .replace(r#"ack_timeout = "2m""#, r#"ack_timeout = "1s""#);
    assert!(
        text.contains(r#"ack_timeout = "1s""#) && text.contains("type = \"meshtastic-serial\""),
        "profile template changed"
    );
    std::fs::write(path, text).unwrap();
    dir
}

fn reason_of(rig: &Rig, msg_id: &str) -> String {
    receipts(rig)
        .into_iter()
        .filter(|r| r.0 == msg_id)
        .map(|r| r.3)
        .next_back()
        .unwrap_or_default()
}

#[test]
fn texts_to_a_node_a_usb_radio_heard_are_delivered_failed_or_sent_and_wait_while_unplugged() {
    let rig = Rig::new().unwrap();
    let dir = radio_profiles();
    let tmp = tempfile::tempdir().unwrap();
    let pty = Pty::plug(tmp.path());
    let radio = MeshRadio::start(pty.open_feed(), RADIO_NODE, packets());
    let cfg = rig
        .config()
        .profiles(dir.path())
        .serial("radio0", &pty.dev, "meshtastic-serial");
    let gw = rig.start(&cfg).unwrap();
    assert!(
        wait_until(T, || rig.hub_broker.subscriptions_of(DOWN_CLIENT) >= 1),
        "no down subscription; log:\n{}",
        gw.log()
    );
    let online = || {
        rig.hget(&format!("outpost:dev:{NODE}"), "presence")
            .as_deref()
            == Some("online")
    };
    assert!(wait_until(T, online), "{NODE} not heard\n{}", gw.log());

    // Acked by the destination: delivered.
    down(&rig, "s-ack", NODE, "ack: Evacuate sector 4 — ÄÖÜ", 3600);
    wait_states(&rig, "s-ack", &["queued", "delivered"]);
    let texts = radio.log().texts;
    assert_eq!(texts.len(), 1, "{texts:?}");
    let (to, id, want_ack, text) = &texts[0];
    assert_eq!(
        (*to, *want_ack, text.as_str()),
        (NODE_NUM, true, "ack: Evacuate sector 4 — ÄÖÜ"),
        "a ToRadio text to the node with want_ack"
    );
    assert_ne!(*id, 0, "a packet id to match the ack with");

    // NAKed by the mesh: failed with its reason.
    down(&rig, "s-nak", NODE, "nak: nobody home", 3600);
    wait_states(&rig, "s-nak", &["queued", "failed"]);
    assert_eq!(reason_of(&rig, "s-nak"), "MAX_RETRANSMIT");

    // Locally with `outpost send`; only the radio's implicit ack: sent when ack_timeout passes.
    let quiet = gw.send_message(NODE, "silence: is anyone there").unwrap();
    wait_states(&rig, &quiet, &["queued", "sent"]);

    // Over the mesh's 233 bytes: refused at once, nothing written to the radio.
    down(&rig, "s-long", NODE, &"x".repeat(234), 3600);
    wait_states(&rig, "s-long", &["failed"]);
    assert_eq!(reason_of(&rig, "s-long"), "too_long");
    assert_eq!(radio.log().texts.len(), 3, "{:?}", radio.log().texts);

    // Unplugged: the node is still online (2 h presence) but its radio is gone: the message
    // waits. Replugged: it goes out once, to the new radio.
    pty.unplug();
    assert!(
        wait_until(T, || gw.log().contains("radio port closed; reopening")),
        "{}",
        gw.log()
    );
    down(&rig, "s-later", NODE, "ack: after the replug", 3600);
    wait_states(&rig, "s-later", &["queued"]);
    assert!(online(), "the node itself did not go offline");
    let pty = Pty::plug(tmp.path());
    let radio = MeshRadio::start(pty.open_feed(), RADIO_NODE, packets());
    wait_states(&rig, "s-later", &["queued", "delivered"]);
    let texts = radio.log().texts;
    assert_eq!(texts.len(), 1, "sent once after the replug: {texts:?}");
    assert_eq!(
        (texts[0].0, texts[0].2, texts[0].3.as_str()),
        (NODE_NUM, true, "ack: after the replug")
    );

    // The radio itself is no mesh node to text; "*" means the nodes it heard.
    let out = gw.cli(&["send", "--to", "radio0", "x"]).unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(stdout.contains("radio0: failed (bad_node)"), "{stdout}");
    let out = gw.cli(&["send", "--to", "*", "ack: all units"]).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        stdout.contains(&format!("{NODE}: queued")) && !stdout.contains("radio0"),
        "{stdout}"
    );
    assert!(
        wait_until(T, || radio
            .log()
            .texts
            .iter()
            .any(|t| t.0 == NODE_NUM && t.3 == "ack: all units")),
        "{:?}",
        radio.log().texts
    );
    assert_eq!(radio.log().unknown, 0);
    assert_eq!(rig.hub.errors(), Vec::<String>::new());
}
