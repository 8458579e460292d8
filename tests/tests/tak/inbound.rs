//! `subscribe = true`: the TAK user's PLI, 911 alert (and its cancel) and GeoChat become
//! events at the hub; our own echoes and the server's replays after a reconnect do not.

use super::common::*;
use super::uids;
use outpost_cot::encode::{chat, delivered, ChatTo, Unit};
use outpost_system_tests::{rig::of_dev, taky, Rig, TakUser};
use serde_json::json;

const USER: &str = "ANDROID-tak-in-1";
const DEV: &str = "tak:ANDROID-tak-in-1";

fn viper() -> Unit {
    Unit {
        uid: USER.into(),
        callsign: NASTY_NAME.into(),
        cot_type: "a-f-G-U-C".into(),
    }
}

#[test]
fn a_tak_users_pli_911_and_chat_reach_the_hub_and_echoes_do_not() {
    let taky = taky::shared().unwrap();
    let rig = Rig::new().unwrap();
    let dir = radio_profiles("10m");
    let cfg = config(
        &rig,
        "tak-in",
        &rig.uplink_url(),
        &dir,
        &tak_table(&taky.url(), "subscribe = true"),
    );
    let watcher = TakUser::connect(taky.plain_addr()).unwrap();
    let mut gw = rig.start(&cfg).unwrap();
    // One device of our own, so the server has something of ours to echo.
    let radio = rig.device("r9").unwrap();
    let t0 = chrono::Utc::now().timestamp();
    radio
        .publish_qos1(
            "radios/r9/up",
            json!({"ts": t0, "lat": 10.5, "lon": 20.5}).to_string(),
        )
        .unwrap();
    watcher
        .wait_for(T, |e| is_pli_at(e, "outpost.tak-in.r9", 10.5, 20.5))
        .unwrap_or_else(|| {
            panic!(
                "gateway not on the server: {:?}\n{}",
                uids(&watcher),
                gw.log()
            )
        });

    let user = TakUser::connect(taky.plain_addr()).unwrap();
    user.send(&atak_pli(USER, NASTY_NAME, 42.5, -71.25))
        .unwrap();
    assert!(
        rig.hub
            .wait_for(|h| !of_dev(&h.events_of("location"), DEV).is_empty(), T),
        "no location of {DEV} at the hub; gateway log:\n{}",
        gw.log()
    );
    let loc = &of_dev(&rig.hub.events_of("location"), DEV)[0];
    assert_eq!(
        (loc["lat"].as_f64(), loc["lon"].as_f64()),
        (Some(42.5), Some(-71.25))
    );
    assert_eq!(
        (loc["speed"].as_f64(), loc["course"].as_f64()),
        (Some(1.5), Some(90.0))
    );
    assert!(rig
        .hub
        .wait_for(|h| !of_dev(&h.events_of("status"), DEV).is_empty(), T));
    let st = &of_dev(&rig.hub.events_of("status"), DEV)[0];
    assert_eq!(st["battery"].as_f64(), Some(88.0));
    assert_eq!(st["extra"]["callsign"], NASTY_NAME);
    assert_eq!(
        rig.hget(&format!("outpost:dev:{DEV}"), "profile")
            .as_deref(),
        Some("tak"),
        "TAK users get the tak profile (its presence timeout)"
    );

    user.send(&atak_emergency(USER, "VIPER", "b-a-o-tbl", 42.5, -71.25))
        .unwrap();
    assert!(rig
        .hub
        .wait_for(|h| !of_dev(&h.events_of("alert"), DEV).is_empty(), T));
    let alert = &of_dev(&rig.hub.events_of("alert"), DEV)[0];
    assert_eq!(alert["reason"], "emergency");
    assert_eq!(
        (alert["lat"].as_f64(), alert["lon"].as_f64()),
        (Some(42.5), Some(-71.25))
    );
    assert_eq!(alert["text"], "911 Alert from VIPER");
    user.send(&atak_emergency(USER, "VIPER", "b-a-o-can", 42.5, -71.25))
        .unwrap();
    assert!(rig.hub.wait_for(
        |h| of_dev(&h.events_of("status"), DEV)
            .iter()
            .any(|s| s["extra"]["note"] == "emergency cancelled by VIPER"),
        T
    ));

    let now = chrono::Utc::now();
    user.send(&chat(
        &viper(),
        &ChatTo::AllChatRooms,
        NASTY_TEXT,
        "m-all",
        now,
    ))
    .unwrap();
    let to_gw = ChatTo::Contact {
        uid: "outpost.tak-in".into(),
        callsign: "tak-in".into(),
    };
    user.send(&chat(&viper(), &to_gw, "to the gateway", "m-gw", now))
        .unwrap();
    let to_other = ChatTo::Contact {
        uid: "ANDROID-someone-else".into(),
        callsign: "OTHER".into(),
    };
    user.send(&chat(&viper(), &to_other, "not for you", "m-x", now))
        .unwrap();
    assert!(
        rig.hub
            .wait_for(|h| of_dev(&h.events_of("message"), DEV).len() >= 2, T),
        "messages: {:?}\n{}",
        rig.hub.events_of("message"),
        gw.log()
    );
    let msgs = of_dev(&rig.hub.events_of("message"), DEV);
    let all = msgs
        .iter()
        .find(|m| m["msg_id"] == "m-all")
        .expect("All Chat Rooms message");
    assert_eq!(
        all["text"], NASTY_TEXT,
        "chat text intact through the server"
    );
    assert_eq!(all["to"], "All Chat Rooms");
    let direct = msgs
        .iter()
        .find(|m| m["msg_id"] == "m-gw")
        .expect("direct message");
    assert_eq!(direct["text"], "to the gateway");
    assert!(direct.get("to").is_none());

    // A delivery receipt reaches the gateway's downlink hook.
    user.send(&delivered(&viper(), "dl-1", chrono::Utc::now()))
        .unwrap();
    assert!(
        gw.wait_for_log("dl-1", T),
        "no receipt in the log:\n{}",
        gw.log()
    );

    // Reconnect: the server replays what it keeps (our r9, the user's PLI, alert, chats).
    gw.restart().unwrap();
    user.send(&atak_pli(USER, NASTY_NAME, 42.75, -71.25))
        .unwrap();
    assert!(rig.hub.wait_for(
        |h| of_dev(&h.events_of("location"), DEV)
            .iter()
            .any(|l| l["lat"].as_f64() == Some(42.75)),
        T
    ));
    let h = &rig.hub;
    assert_eq!(
        of_dev(&h.events_of("alert"), DEV).len(),
        1,
        "a replayed 911 is stored once"
    );
    assert!(of_dev(&h.events_of("message"), DEV)
        .iter()
        .all(|m| m["msg_id"] != "m-x"));
    let n_all = of_dev(&h.events_of("message"), DEV)
        .iter()
        .filter(|m| m["msg_id"] == "m-all")
        .count();
    assert_eq!(n_all, 1, "a replayed chat is stored once");
    for class in ["location", "status", "alert", "message"] {
        assert!(
            h.events_of(class).iter().all(|e| !e["dev"]
                .as_str()
                .unwrap_or("")
                .starts_with("tak:outpost.tak-in")),
            "our own echo was taken in as a TAK user ({class})"
        );
    }
}
