//! Downlink to a TAK contact (SPEC §8 `tak`, issue 14): a message to `tak:<uid>` (a TAK user
//! the gateway learned from the server's stream) arrives at that user as a GeoChat from the
//! gateway with its text intact; the user's `b-t-f-d` receipt makes it `delivered` at the hub.
//! With the gateway's TAK link down the message stays `queued` and goes out when it is back.

use super::common::*;
use super::uids;
use outpost_cot::encode::{delivered, Unit};
use outpost_cot::xml::Element;
use outpost_system_tests::{free_port, taky, wait_until, GatewayConfig, Rig, TakUser};

const USER: &str = "ANDROID-tak-dl-1";
const DEV: &str = "tak:ANDROID-tak-dl-1";
const GW_UID: &str = "outpost.tak-dl";

fn gateway(rig: &Rig, dir: &outpost_system_tests::ProfileDir, url: &str) -> GatewayConfig {
    let more = "subscribe = true\ncallsign = \"Engine 42\"";
    config(rig, "tak-dl", &rig.uplink_url(), dir, &tak_table(url, more))
}

/// The GeoChat with message id `msg_id` the user received, if any.
fn chat_of(user: &TakUser, msg_id: &str) -> Option<Element> {
    user.seen().into_iter().find(|e| chat_of_el(e, msg_id))
}

fn wait_states(rig: &Rig, msg_id: &str, want: &[&str]) {
    assert!(
        wait_until(T, || rig.receipt_states(msg_id) == want),
        "{msg_id}: receipts {:?}, want {want:?}",
        rig.receipt_states(msg_id)
    );
}

#[test]
fn a_message_to_a_tak_user_is_a_geochat_to_it_and_its_receipt_makes_it_delivered() {
    let taky = taky::shared().unwrap();
    let rig = Rig::new().unwrap();
    let dir = radio_profiles("10m");
    let cfg = gateway(&rig, &dir, &taky.url());
    let user = TakUser::connect(taky.plain_addr()).unwrap();
    user.send(&atak_pli(USER, NASTY_NAME, 42.5, -71.25))
        .unwrap();
    let mut gw = rig.start(&cfg).unwrap();
    let online = || {
        rig.hget(&format!("outpost:dev:{DEV}"), "presence")
            .as_deref()
            == Some("online")
    };
    assert!(wait_until(T, online), "{DEV} not learned\n{}", gw.log());
    // Its callsign too (the chat room is named after it).
    assert!(wait_until(T, || rig
        .hget(&format!("outpost:dev:{DEV}"), "status")
        .is_some()));

    let id = gw.send_message(DEV, NASTY_TEXT).unwrap();
    let chat = user
        .wait_for(T, |e| chat_of_el(e, &id))
        .unwrap_or_else(|| panic!("no GeoChat {id}: {:?}\n{}", uids(&user), gw.log()));
    let detail = chat.find("detail").unwrap();
    assert_eq!(
        detail.find("remarks").unwrap().text,
        NASTY_TEXT,
        "text intact through the server"
    );
    assert_eq!(
        at(&chat, &["detail", "__chat"], "id"),
        Some(USER),
        "to the contact"
    );
    assert_eq!(
        at(&chat, &["detail", "__chat"], "chatroom"),
        Some(NASTY_NAME)
    );
    assert_eq!(
        at(&chat, &["detail", "__chat"], "senderCallsign"),
        Some("Engine 42")
    );
    assert_eq!(
        at(&chat, &["detail", "link"], "uid"),
        Some(GW_UID),
        "from the gateway"
    );
    wait_states(&rig, &id, &["queued", "sent"]);

    let viper = Unit {
        uid: USER.into(),
        callsign: NASTY_NAME.into(),
        cot_type: "a-f-G-U-C".into(),
    };
    user.send(&delivered(&viper, &id, chrono::Utc::now()))
        .unwrap();
    wait_states(&rig, &id, &["queued", "sent", "delivered"]);

    // The gateway's TAK link down (reloaded onto a port nobody listens on): queued only.
    let down = gateway(&rig, &dir, &format!("tcp://127.0.0.1:{}", free_port()));
    gw.write_config(&down.to_toml()).unwrap();
    gw.signal(libc::SIGHUP).unwrap();
    assert!(
        gw.wait_for_log("TAK server not reachable", T),
        "{}",
        gw.log()
    );
    let later = gw.send_message(DEV, "Hold at the staging area").unwrap();
    wait_states(&rig, &later, &["queued"]);
    assert!(online(), "the contact itself is still online");
    assert!(chat_of(&user, &later).is_none(), "sent with the link down");

    // Back: it goes out, once, and the user's receipt makes it delivered.
    gw.write_config(&cfg.to_toml()).unwrap();
    gw.signal(libc::SIGHUP).unwrap();
    let chat = user
        .wait_for(T, |e| chat_of_el(e, &later))
        .unwrap_or_else(|| panic!("not sent after the link came back\n{}", gw.log()));
    assert_eq!(
        chat.find("detail").unwrap().find("remarks").unwrap().text,
        "Hold at the staging area"
    );
    wait_states(&rig, &later, &["queued", "sent"]);
    user.send(&delivered(&viper, &later, chrono::Utc::now()))
        .unwrap();
    wait_states(&rig, &later, &["queued", "sent", "delivered"]);
    assert_eq!(
        rig.receipt_states(&id),
        ["queued", "sent", "delivered"],
        "the server's replay of the first receipt changed nothing"
    );
    let n = user.seen().iter().filter(|e| chat_of_el(e, &later)).count();
    assert_eq!(n, 1, "one GeoChat per message");
    gw.terminate().unwrap();
}

/// True for the GeoChat with message id `msg_id`.
fn chat_of_el(e: &Element, msg_id: &str) -> bool {
    e.get("type") == Some("b-t-f") && at(e, &["detail", "__chat"], "messageId") == Some(msg_id)
}
