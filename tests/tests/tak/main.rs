//! TAK interoperability against a real TAK server (SPEC §10, issue 14): `taky` from PyPI
//! (the virtualenv `.ci/run` creates), a CoT client in the test acting as the ATAK user.
//! The gateway's units, alerts and chat reach the user with the right positions and
//! callsigns; the user's PLI, 911 alert and GeoChat reach the hub as events; a server restart
//! gets the current picture again; `ssl://` with a client certificate works; a hub with
//! `[[tak]]` does the same for a regional server (`hub`); a message to a TAK user goes out as
//! GeoChat and its delivery receipt comes back (`downlink`).

mod common;
mod downlink;
mod hub;
mod inbound;
mod restart_tls;

use common::*;
use outpost_cot::xml::Element;
use outpost_system_tests::{taky, Rig, TakUser};
use serde_json::json;

const UID: &str = "outpost.tak-out.r7";

#[test]
fn units_alerts_and_chat_reach_a_tak_user_with_positions_and_callsigns() {
    let taky = taky::shared().unwrap();
    let rig = Rig::new().unwrap();
    let dir = radio_profiles("3s");
    let cfg = config(
        &rig,
        "tak-out",
        &rig.uplink_url(),
        &dir,
        &tak_table(&taky.url(), ""),
    );
    let user = TakUser::connect(taky.plain_addr()).unwrap();
    let gw = rig.start(&cfg).unwrap();
    let radio = rig.device("r7").unwrap();
    let t0 = chrono::Utc::now().timestamp();
    radio
        .publish_qos1(
            "radios/r7/up",
            json!({"ts": t0, "name": NASTY_NAME, "bat": 81}).to_string(),
        )
        .unwrap();
    let fix = json!({"ts": t0 + 1, "lat": 42.3601, "lon": -71.0589, "alt": 12.5, "acc": 4,
                     "speed": 3.2, "course": 271});
    radio.publish_qos1("radios/r7/up", fix.to_string()).unwrap();

    let pli = user
        .wait_for(T, |e| is_pli_at(e, UID, 42.3601, -71.0589))
        .unwrap_or_else(|| panic!("no PLI; saw {:?}\ngateway log:\n{}", uids(&user), gw.log()));
    assert_eq!(
        pli.get("type"),
        Some("a-f-G-E-V-A"),
        "the profile's tak_type"
    );
    assert_eq!(pli.get("how"), Some("m-g"));
    assert_eq!(
        at(&pli, &["detail", "contact"], "callsign"),
        Some(NASTY_NAME)
    );
    assert!(close(num(&pli, &["point"], "hae"), 12.5));
    assert!(
        close(num(&pli, &["point"], "ce"), 4.0),
        "ce from the device's accuracy"
    );
    assert!(
        close(num(&pli, &["point"], "le"), 9_999_999.0),
        "le unknown"
    );
    assert!(close(num(&pli, &["detail", "track"], "speed"), 3.2));
    assert!(close(num(&pli, &["detail", "track"], "course"), 271.0));
    assert!(close(num(&pli, &["detail", "status"], "battery"), 81.0));
    assert_eq!(ts(&pli, "time").timestamp(), t0 + 1, "time is the fix time");
    assert_eq!(
        (ts(&pli, "stale") - ts(&pli, "time")).num_seconds(),
        3,
        "stale = fix + the profile's presence timeout"
    );

    radio
        .publish_qos1(
            "radios/r7/up",
            json!({"ts": t0 + 2, "sos": true, "sos_text": "trapped & <hurt>"}).to_string(),
        )
        .unwrap();
    let alert = user
        .wait_for(T, |e| e.get("type") == Some("b-a-o-tbl"))
        .expect("no emergency");
    assert_eq!(alert.get("uid"), Some(format!("{UID}-9-1-1").as_str()));
    assert_eq!(at(&alert, &["detail", "link"], "uid"), Some(UID));
    let em = alert
        .find("detail")
        .and_then(|d| d.find("emergency"))
        .unwrap();
    assert_eq!(
        (em.get("type"), em.text.as_str()),
        (Some("911 Alert"), NASTY_NAME)
    );
    assert!(
        close(num(&alert, &["point"], "lat"), 42.3601),
        "placed at the last fix"
    );
    let remarks = &alert.find("detail").unwrap().find("remarks").unwrap().text;
    assert_eq!(remarks, "emergency: trapped & <hurt>");

    radio
        .publish_qos1(
            "radios/r7/up",
            json!({"ts": t0 + 3, "msg": NASTY_TEXT}).to_string(),
        )
        .unwrap();
    let chat = user
        .wait_for(T, |e| e.get("type") == Some("b-t-f"))
        .expect("no chat");
    let c = chat.find("detail").unwrap().find("__chat").unwrap();
    assert_eq!(c.get("chatroom"), Some("All Chat Rooms"));
    assert_eq!(c.get("senderCallsign"), Some(NASTY_NAME));
    assert_eq!(at(&chat, &["detail", "link"], "uid"), Some(UID));
    assert_eq!(
        chat.find("detail").unwrap().find("remarks").unwrap().text,
        NASTY_TEXT
    );

    // Silent past its presence timeout: re-sent stale now.
    let gone = user
        .wait_for(T, |e| {
            e.get("uid") == Some(UID)
                && e.get("type") == Some("a-f-G-E-V-A")
                && ts(e, "stale") <= ts(e, "time")
        })
        .expect("no stale PLI after the device went offline");
    assert!(close(num(&gone, &["point"], "lat"), 42.3601));
    assert!(ts(&gone, "time").timestamp() >= t0 + 3);
}

/// The uids the user saw, for failure messages.
pub fn uids(user: &TakUser) -> Vec<String> {
    user.seen()
        .iter()
        .map(|e: &Element| {
            format!(
                "{}:{}",
                e.get("uid").unwrap_or("?"),
                e.get("type").unwrap_or("?")
            )
        })
        .collect()
}
