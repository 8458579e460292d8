use super::*;
use crate::decode::{decode, Inbound};
use crate::xml::Element;
use chrono::TimeZone;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap()
}

fn unit(cs: &str) -> Unit {
    Unit {
        uid: "outpost.veh-1.r7".into(),
        callsign: cs.into(),
        cot_type: crate::DEFAULT_TYPE.into(),
    }
}

#[test]
fn pli_has_every_spec_field() {
    let loc = Location {
        lat: 42.3601,
        lon: -71.0589,
        alt: Some(12.5),
        speed: Some(3.2),
        course: Some(271.0),
        hdop: Some(1.2),
        ..Default::default()
    };
    let xml = pli(
        &unit("Engine 7"),
        &loc,
        Some(76.6),
        t0(),
        t0() + Duration::minutes(15),
    );
    let e = Element::parse(&xml).unwrap();
    assert_eq!(e.get("uid"), Some("outpost.veh-1.r7"));
    assert_eq!(e.get("type"), Some("a-f-G-U-C"));
    assert_eq!(e.get("how"), Some("m-g"));
    assert_eq!(e.get("time"), Some("2026-12-01T12:00:00.000Z"));
    assert_eq!(e.get("stale"), Some("2026-12-01T12:15:00.000Z"));
    let p = e.find("point").unwrap();
    assert_eq!(p.get("lat"), Some("42.3601"));
    assert_eq!(p.get("lon"), Some("-71.0589"));
    assert_eq!(p.get("hae"), Some("12.5"));
    assert_eq!(p.get("ce"), Some("6"), "hdop 1.2 × 5 m");
    assert_eq!(p.get("le"), Some("9999999"));
    let d = e.find("detail").unwrap();
    assert_eq!(d.find("contact").unwrap().get("callsign"), Some("Engine 7"));
    assert_eq!(d.find("track").unwrap().get("speed"), Some("3.2"));
    assert_eq!(d.find("track").unwrap().get("course"), Some("271"));
    assert_eq!(d.find("status").unwrap().get("battery"), Some("77"));
}

#[test]
fn unknown_altitude_and_error_are_9999999_and_acc_wins_over_hdop() {
    let loc = Location {
        lat: 1.0,
        lon: 2.0,
        ..Default::default()
    };
    let e = Element::parse(&pli(&unit("x"), &loc, None, t0(), t0())).unwrap();
    let p = e.find("point").unwrap();
    assert_eq!(
        (p.get("hae"), p.get("ce")),
        (Some("9999999"), Some("9999999"))
    );
    assert!(e.find("detail").unwrap().find("track").is_none());
    let loc = Location {
        acc: Some(4.0),
        hdop: Some(3.0),
        ..loc
    };
    assert_eq!(ce(&loc), 4.0);
}

#[test]
fn offline_is_stale_now() {
    let loc = Location {
        lat: 1.0,
        lon: 2.0,
        ..Default::default()
    };
    let e = Element::parse(&offline(&unit("x"), &loc, t0())).unwrap();
    assert_eq!(e.get("stale"), e.get("time"));
}

#[test]
fn hostile_callsign_and_chat_text_arrive_intact() {
    let cs = r#"<Eng & "7" 'Ü'>"#;
    let text = "Evacuate <sector 4> & report \"now\" — ÄÖÜ 火 🚒\nline two";
    let u = unit(cs);
    let xml = chat(&u, &ChatTo::AllChatRooms, text, "m-1", t0());
    assert_eq!(xml.matches("<event").count(), 1);
    match decode(&xml).unwrap() {
        Inbound::Chat {
            sender,
            sender_callsign,
            room,
            text: got,
            msg_id,
            ..
        } => {
            assert_eq!(sender, u.uid);
            assert_eq!(sender_callsign.as_deref(), Some(cs));
            assert_eq!(room, crate::ALL_CHAT_ROOMS);
            assert_eq!(got, text);
            assert_eq!(msg_id.as_deref(), Some("m-1"));
        }
        other => panic!("{other:?}"),
    }
    let loc = Location {
        lat: 1.0,
        lon: 2.0,
        ..Default::default()
    };
    match decode(&pli(&u, &loc, None, t0(), t0())).unwrap() {
        Inbound::Pli { callsign, .. } => assert_eq!(callsign.as_deref(), Some(cs)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn emergency_is_911_with_the_alert_position_or_last_fix() {
    let a = Alert {
        reason: "emergency".into(),
        text: Some("trapped & injured".into()),
        lat: None,
        lon: None,
    };
    let xml = emergency(&unit("R7"), &a, Some((10.5, 20.25)), t0());
    let e = Element::parse(&xml).unwrap();
    assert_eq!(e.get("type"), Some("b-a-o-tbl"));
    assert_eq!(e.get("uid"), Some("outpost.veh-1.r7-9-1-1"));
    let d = e.find("detail").unwrap();
    let em = d.find("emergency").unwrap();
    assert_eq!(
        (em.get("type"), em.text.as_str()),
        (Some("911 Alert"), "R7")
    );
    assert_eq!(
        d.find("remarks").unwrap().text,
        "emergency: trapped & injured"
    );
    assert_eq!(e.find("point").unwrap().get("lat"), Some("10.5"));
    match decode(&xml).unwrap() {
        Inbound::Emergency {
            sender, callsign, ..
        } => {
            assert_eq!(sender, "outpost.veh-1.r7");
            assert_eq!(callsign.as_deref(), Some("R7"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn direct_chat_and_its_receipt() {
    let to = ChatTo::Contact {
        uid: "ANDROID-42".into(),
        callsign: "VIPER".into(),
    };
    let xml = chat(&unit("HQ"), &to, "hi", "msg-9", t0());
    let e = Element::parse(&xml).unwrap();
    let c = e.find("detail").unwrap().find("__chat").unwrap();
    assert_eq!(
        (c.get("chatroom"), c.get("id")),
        (Some("VIPER"), Some("ANDROID-42"))
    );
    let viper = Unit {
        uid: "ANDROID-42".into(),
        callsign: "VIPER".into(),
        cot_type: "a-f-G-U-C".into(),
    };
    match decode(&delivered(&viper, "msg-9", t0())).unwrap() {
        Inbound::Delivered { msg_id, sender, .. } => {
            assert_eq!(msg_id, "msg-9");
            assert_eq!(sender.as_deref(), Some("ANDROID-42"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn numbers_never_use_exponents() {
    assert_eq!(num(1e-9), "0");
    assert_eq!(num(123456789.0), "123456789");
    assert_eq!(num(f64::NAN), "0");
    assert_eq!(num(-0.5), "-0.5");
}
