//! The hub beside a regional TAK server: a real gateway (no `[[tak]]` of its own) → the hub
//! broker → a real `outpost-hub` with `[[tak]]` → a real taky. The TAK user sees the units
//! with their positions and callsigns, the alert and the chat; its own PLI, 911, cancel and
//! GeoChat reach the hub API as events of `tak-regional`; a taky restart gets the picture again; `/metrics`
//! shows the TAK families.

use super::common::*;
use super::uids;
use outpost_cot::encode::{self, ChatTo, Unit};
use outpost_system_tests::{HubConfig, HubProc, RedisServer, Rig, TakUser, Taky};
use serde_json::{json, Value};

const GW: &str = "gw-hubtak";
const UID: &str = "outpost.gw-hubtak.r3";
const USER: &str = "ANDROID-hub-user-1";

/// Receiver `id` of region boston, in a share group of the TAK receivers' own: the rig's hub
/// (another region on the same broker) gets every batch through its own group.
fn hub_with_tak(id: &str, rig: &Rig, redis: &RedisServer, taky: &Taky) -> HubProc {
    let mut cfg = HubConfig::new(id, &rig.hub_broker.url(), vec![redis.url()]);
    cfg.region = "boston".into();
    cfg.share_group = "tak-hubs".into();
    cfg.extra = format!(
        "[[tak]]\nname = \"regional\"\nurl = \"{}\"\nsubscribe = true\ncallsign = \"Boston dispatch\"\n",
        taky.url()
    );
    HubProc::start(&cfg).unwrap()
}

#[test]
fn a_hub_puts_the_regions_units_alerts_and_chat_on_a_regional_tak_server_and_takes_its_users_in() {
    let mut taky = Taky::new().unwrap();
    let rig = Rig::new().unwrap();
    let hub_redis = RedisServer::new().unwrap();
    // Two receivers of one share group, each with the same [[tak]]: each batch reaches one of
    // them, and each sees the other's units on the server (echoes to recognise).
    let hubs = [
        hub_with_tak("h-tak1", &rig, &hub_redis, &taky),
        hub_with_tak("h-tak2", &rig, &hub_redis, &taky),
    ];
    let user = TakUser::connect(taky.plain_addr()).unwrap();
    let dir = radio_profiles("10m");
    let gw = rig
        .start(&config(&rig, GW, &rig.uplink_url(), &dir, ""))
        .unwrap();
    let radio = rig.device("r3").unwrap();
    let t0 = chrono::Utc::now().timestamp();
    let send = |v: Value| radio.publish_qos1("radios/r3/up", v.to_string()).unwrap();
    send(json!({"ts": t0, "name": NASTY_NAME, "bat": 64}));
    send(json!({"ts": t0 + 1, "lat": 42.3601, "lon": -71.0589, "alt": 12.5, "acc": 4}));
    let logs = || {
        let h: Vec<String> = hubs.iter().map(HubProc::log).collect();
        format!(
            "hub logs:\n{}\ngateway log:\n{}",
            h.join("\n---\n"),
            gw.log()
        )
    };

    // Status and location arrive in separate batches: the PLI with the name may be the second.
    let pli = user
        .wait_for(T, |e| {
            is_pli_at(e, UID, 42.3601, -71.0589)
                && at(e, &["detail", "contact"], "callsign") == Some(NASTY_NAME)
        })
        .unwrap_or_else(|| panic!("no PLI from the hub; saw {:?}\n{}", uids(&user), logs()));
    assert_eq!(pli.get("type"), Some("a-f-G-U-C"));
    assert!(close(num(&pli, &["point"], "hae"), 12.5));
    assert!(close(num(&pli, &["point"], "ce"), 4.0));
    assert!(close(num(&pli, &["detail", "status"], "battery"), 64.0));
    assert_eq!(ts(&pli, "time").timestamp(), t0 + 1, "the fix time");

    send(json!({"ts": t0 + 2, "sos": true, "sos_text": "trapped & <hurt>"}));
    let alert = user
        .wait_for(T, |e| e.get("type") == Some("b-a-o-tbl"))
        .unwrap_or_else(|| panic!("no emergency: {:?}\n{}", uids(&user), logs()));
    assert_eq!(alert.get("uid"), Some(format!("{UID}-9-1-1").as_str()));
    assert_eq!(at(&alert, &["detail", "link"], "uid"), Some(UID));
    assert!(
        close(num(&alert, &["point"], "lat"), 42.3601),
        "at the last fix"
    );
    let remarks = &alert.find("detail").unwrap().find("remarks").unwrap().text;
    assert_eq!(remarks, "emergency: trapped & <hurt>");

    send(json!({"ts": t0 + 3, "msg": NASTY_TEXT}));
    let chat = user
        .wait_for(T, |e| e.get("type") == Some("b-t-f"))
        .unwrap_or_else(|| panic!("no chat: {:?}\n{}", uids(&user), logs()));
    let c = chat.find("detail").unwrap().find("__chat").unwrap();
    assert_eq!(c.get("chatroom"), Some("All Chat Rooms"));
    assert_eq!(c.get("senderCallsign"), Some(NASTY_NAME));
    assert_eq!(
        chat.find("detail").unwrap().find("remarks").unwrap().text,
        NASTY_TEXT
    );
    // subscribe = true: the TAK user's PLI (sent twice, as a server replay would) and 911.
    let me = atak_pli(USER, "VIPER", 42.5, -71.25);
    user.send(&me).unwrap();
    user.send(&me).unwrap();
    let api = hubs[0].api();
    let events = |class: &str| -> Vec<Value> {
        api.all_events("tak-regional", class, 100)
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e["dev"] == format!("tak:{USER}"))
            .collect()
    };
    assert!(
        outpost_system_tests::wait_until(T, || !events("location").is_empty()),
        "no TAK user location at the hub\n{}",
        logs()
    );
    user.send(&atak_emergency(USER, "VIPER", "b-a-o-tbl", 42.5, -71.25))
        .unwrap();
    assert!(
        outpost_system_tests::wait_until(T, || !events("alert").is_empty()),
        "no TAK user alert at the hub\n{}",
        logs()
    );
    let loc = &events("location")[0];
    assert_eq!(
        (loc["lat"].as_f64(), loc["lon"].as_f64()),
        (Some(42.5), Some(-71.25))
    );
    assert_eq!(
        events("location").len(),
        1,
        "the repeat, and the other receiver's copy, are the same event"
    );
    assert_eq!(events("alert").len(), 1);
    let a = &events("alert")[0];
    assert_eq!(a["reason"], "emergency");
    assert!(a["text"].as_str().unwrap().contains("VIPER"), "{a}");
    let dev = api.json(&format!("/api/v1/devices/tak:{USER}")).unwrap();
    assert_eq!(dev["gw"], "tak-regional");
    let devices = api.json("/api/v1/devices").unwrap();
    let echoed: Vec<&Value> = devices["devices"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| {
            d["dev"]
                .as_str()
                .is_some_and(|d| d.starts_with("tak:outpost."))
        })
        .collect();
    assert!(
        echoed.is_empty(),
        "our own PLIs came back as users: {echoed:?}"
    );

    // Each batch reached one receiver: one alert and one chat on the map, not one per receiver.
    let count = |ty: &str| {
        user.seen()
            .iter()
            .filter(|e| e.get("type") == Some(ty))
            .count()
    };
    assert_eq!(
        (count("b-a-o-tbl"), count("b-t-f")),
        (1, 1),
        "{:?}",
        uids(&user)
    );

    // The user's cancel and GeoChat, to the room and to the hub's contact.
    user.send(&atak_emergency(USER, "VIPER", "b-a-o-can", 42.5, -71.25))
        .unwrap();
    let viper = Unit {
        uid: USER.into(),
        callsign: "VIPER".into(),
        cot_type: "a-f-G-U-C".into(),
    };
    let now = chrono::Utc::now();
    user.send(&encode::chat(
        &viper,
        &ChatTo::AllChatRooms,
        NASTY_TEXT,
        "m-room",
        now,
    ))
    .unwrap();
    let to_hub = ChatTo::Contact {
        uid: "outpost.hub.boston".into(),
        callsign: "Boston dispatch".into(),
    };
    user.send(&encode::chat(&viper, &to_hub, "to dispatch", "m-hub", now))
        .unwrap();
    assert!(
        outpost_system_tests::wait_until(T, || events("message").len() >= 2
            && events("status")
                .iter()
                .any(|s| s["extra"]["note"] == "emergency cancelled by VIPER")),
        "messages {:?}, status {:?}\n{}",
        events("message"),
        events("status"),
        logs()
    );
    let msgs = events("message");
    let text_of = |id: &str| {
        let m = msgs
            .iter()
            .find(|m| m["msg_id"] == id)
            .unwrap_or_else(|| panic!("{id}: {msgs:?}"));
        (
            m["text"].as_str().map(str::to_string),
            m["to"].as_str().map(str::to_string),
        )
    };
    assert_eq!(
        text_of("m-room"),
        (Some(NASTY_TEXT.into()), Some("All Chat Rooms".into()))
    );
    assert_eq!(text_of("m-hub"), (Some("to dispatch".into()), None));

    // The server restarts empty (in-memory): only a resend shows the unit again.
    drop(user);
    taky.stop().unwrap();
    taky.start().unwrap();
    let after = TakUser::connect(taky.plain_addr()).unwrap();
    let again = after
        .wait_for(T, |e| is_pli_at(e, UID, 42.3601, -71.0589))
        .unwrap_or_else(|| panic!("picture not resent: {:?}\n{}", uids(&after), logs()));
    assert_eq!(
        ts(&again, "time").timestamp(),
        t0 + 1,
        "the latest fix, not a new one"
    );
    assert_eq!(
        at(&again, &["detail", "contact"], "callsign"),
        Some(NASTY_NAME)
    );

    let tak = [("tak", "regional")];
    let scrapes = || -> Vec<String> {
        let s = hubs
            .iter()
            .map(|h| h.api().text("/metrics").unwrap_or_default());
        s.collect()
    };
    // Summed over both receivers; `None` when one of them lacks the sample.
    let total = |m: &[String], name: &str, labels: &[(&str, &str)]| -> Option<f64> {
        m.iter().map(|t| metric(t, name, labels)).sum()
    };
    assert!(
        outpost_system_tests::wait_until(T, || {
            let m = scrapes();
            total(&m, "outpost_hub_tak_connects", &tak).unwrap_or(0.0) >= 4.0
                && total(&m, "outpost_hub_tak_up", &tak) == Some(2.0)
        }),
        "{:?}",
        scrapes()
    );
    let m = scrapes();
    let at_least = |name: &str, labels: &[(&str, &str)], n: f64| {
        let v = total(&m, name, labels);
        assert!(
            v.is_some_and(|v| v >= n),
            "{name}{labels:?} = {v:?}, want ≥ {n}\n{m:?}"
        );
    };
    at_least("outpost_hub_tak_disconnects", &tak, 2.0);
    at_least("outpost_hub_tak_picture_sent", &tak, 2.0);
    at_least("outpost_hub_tak_received", &tak, 6.0);
    at_least("outpost_hub_tak_echoes", &tak, 1.0);
    for (kind, n) in [("pli", 2.0), ("alert", 1.0), ("chat", 1.0)] {
        at_least(
            "outpost_hub_tak_sent",
            &[("tak", "regional"), ("kind", kind)],
            n,
        );
    }
    for name in [
        "outpost_hub_tak_malformed",
        "outpost_hub_tak_queue_replaced",
        "outpost_hub_tak_queue_dropped",
        "outpost_hub_tak_queue_len",
    ] {
        at_least(name, &tak, 0.0);
    }
    // SIGTERM with a TAK link up: the link ends with the receiver, exit 0.
    let mut hubs = hubs;
    for h in &mut hubs {
        assert!(h.terminate().unwrap().success(), "{}", h.log());
    }
}

#[test]
fn hub_check_reports_tak_problems_at_their_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.toml");
    let base = "[hub]\nid = \"boston-1\"\nregion = \"boston\"\n\n[broker]\n\n[redis]\n\n";
    let check = |tables: &str| {
        std::fs::write(&path, format!("{base}{tables}")).unwrap();
        let out = std::process::Command::new(outpost_system_tests::hub_bin().unwrap())
            .args(["check", "-c"])
            .arg(&path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr).to_string()
            + &String::from_utf8_lossy(&out.stdout);
        (out.status.code(), text)
    };
    let (code, err) = check(
        "[[tak]]\nurl = \"udp://x\"\n\n[[tak]]\nurl = \"tcp://h:1\"\nca_file = \"ca.pem\"\nqueue = 1\n\n[[tak]]\nname = \"r\"\nurl = \"ssl://h\"\nkey_file = \"missing.key\"\ncert_file = \"missing.pem\"\n\n[[tak]]\nname = \"r\"\nurl = \"tcp://h\"\nbogus = 1\n",
    );
    assert_eq!(code, Some(1), "{err}");
    let f = path.display().to_string();
    for want in [
        format!("{f}:10:7: tak.url: \"udp://x\": scheme must be tcp:// or ssl://"),
        format!("{f}:14:11: tak: ca_file, cert_file and key_file need an ssl:// url"),
        format!("{f}:15:9: tak.queue: must be between 16 and 1000000"),
        format!(
            "{f}:21:13: tak: TLS: cannot read {}/missing.pem",
            dir.path().display()
        ),
        format!("{f}:24:8: tak.name: \"r\" is named twice"),
        format!("{f}:26:1: tak[3]: unknown key `bogus`"),
    ] {
        assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    }
    let (code, out) = check("[[tak]]\nurl = \"tcp://127.0.0.1:8087\"\nsubscribe = true\n");
    assert_eq!(code, Some(0), "{out}");
}
