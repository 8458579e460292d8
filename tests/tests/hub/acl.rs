//! Who may publish: the shipped hub broker ACL lets a gateway publish only under its own id,
//! and a gateway whose login may not publish its topics keeps its events.

use std::collections::HashSet;
use std::time::Duration;

use outpost_system_tests::{
    wait_until, Device, GatewayConfig, HubConfig, HubProc, Mosquitto, Outpost, RedisServer,
};
use tempfile::TempDir;

use crate::{batch, ids, loc, up, T};

/// `mosquitto_pub` as `user`: one QoS 1 message.
fn mosquitto_pub(port: u16, user: &str, topic: &str, payload: &str) {
    let st = std::process::Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-u",
            user,
            "-P",
            &format!("pw-{user}"),
        ])
        .args([
            "-i",
            &format!("pub-{user}"),
            "-q",
            "1",
            "-t",
            topic,
            "-m",
            payload,
        ])
        .status()
        .expect("mosquitto_pub on PATH");
    assert!(st.success(), "mosquitto_pub as {user}");
}

/// The hub broker with the ACL exactly as shipped and logins `veh-a`, `veh-b`, `outpost-hub`
/// (password `pw-<user>`), and a hub on it with its own Redis.
fn shipped_broker_and_hub() -> (TempDir, Mosquitto, RedisServer, HubProc) {
    broker_and_hub(&outpost_system_tests::workspace_root().join("hub/broker/acl"))
}

/// As [`shipped_broker_and_hub`], with the ACL file `acl`.
fn broker_and_hub(acl: &std::path::Path) -> (TempDir, Mosquitto, RedisServer, HubProc) {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("passwords");
    std::fs::write(&pw, "").unwrap();
    for user in ["veh-a", "veh-b", "outpost-hub"] {
        let st = std::process::Command::new("mosquitto_passwd")
            .arg("-b")
            .arg(&pw)
            .args([user, &format!("pw-{user}")])
            .status()
            .expect("mosquitto_passwd on PATH");
        assert!(st.success());
    }
    let auth = format!(
        "allow_anonymous false\npassword_file {}\nacl_file {}",
        pw.display(),
        acl.display()
    );
    let broker = Mosquitto::with_auth(&auth).unwrap();
    let redis = RedisServer::new().unwrap();
    let mut cfg = HubConfig::new("h1", &broker.url(), vec![redis.url()]);
    cfg.username = Some("outpost-hub".into());
    cfg.password = Some("pw-outpost-hub".into());
    let hub = HubProc::start(&cfg).unwrap();
    (dir, broker, redis, hub)
}

#[test]
fn shipped_hub_broker_acl_lets_a_gateway_publish_only_as_itself() {
    let (_dir, broker, _redis, hub) = shipped_broker_and_hub();
    let api = hub.api();
    let ev = |ms| loc(ms, "r1", 1.0, 2.0, "2026-11-30T10:00:00.000Z");
    // veh-a writes as veh-b: the broker drops it. veh-a as itself: stored.
    mosquitto_pub(
        broker.port(),
        "veh-a",
        &up("veh-b", "location"),
        &batch("veh-b", "location", &[ev(1)]),
    );
    mosquitto_pub(
        broker.port(),
        "veh-a",
        &up("veh-a", "location"),
        &batch("veh-a", "location", &[ev(2)]),
    );
    assert!(wait_until(T, || api
        .all_events("veh-a", "location", 10)
        .unwrap()
        .len()
        == 1));
    // veh-b as itself gets through: the refusal above was about who, not what.
    mosquitto_pub(
        broker.port(),
        "veh-b",
        &up("veh-b", "location"),
        &batch("veh-b", "location", &[ev(3)]),
    );
    assert!(wait_until(T, || api
        .all_events("veh-b", "location", 10)
        .unwrap()
        .len()
        == 1));
    assert_eq!(
        ids(&api.all_events("veh-b", "location", 10).unwrap()),
        ["3-0"],
        "veh-a's forgery never stored"
    );
}

#[test]
fn a_gateway_whose_hub_login_may_not_publish_its_topics_keeps_its_events_until_it_may() {
    let (dir, broker, _hub_redis, hub) = shipped_broker_and_hub();
    let api = hub.api();
    let redis = RedisServer::new().unwrap();
    let devices = Mosquitto::new().unwrap();
    let login = |user: &str| {
        let pw = dir.path().join(format!("{user}.pw"));
        std::fs::write(&pw, format!("pw-{user}\n")).unwrap();
        format!(
            "[uplink]\nusername = \"{user}\"\npassword_file = {:?}\n",
            pw.display().to_string()
        )
    };
    // Gateway veh-a logging in as veh-b: the ACL lets it publish only under veh-b, so the
    // broker answers its batches 0x87 (not authorized). Under MQTT 3.1.1 it would answer a
    // plain PUBACK and drop them.
    let mut cfg =
        GatewayConfig::new("veh-a", &redis.url(), &devices.url(), &broker.url()).mqtt("owntracks");
    cfg.uplink_header = Some(login("veh-b"));
    let before = devices.subscriptions_of(&cfg.devices_client_id);
    let mut gw = Outpost::start_with(&cfg).unwrap();
    assert!(wait_until(T, || devices
        .subscriptions_of(&cfg.devices_client_id)
        > before));
    let phone = Device::connect(&devices.url(), "phone-ana").unwrap();
    for i in 0..5 {
        let fix = format!(
            r#"{{"_type":"location","tid":"AN","lat":52.{i},"lon":13.4,"tst":{},"acc":5}}"#,
            1_700_000_000 + i
        );
        phone.publish_qos1("owntracks/ana/phone", fix).unwrap();
    }
    assert!(
        gw.wait_for_log("the hub broker refused it", T),
        "{}",
        gw.log()
    );
    std::thread::sleep(Duration::from_secs(1));
    for g in ["veh-a", "veh-b"] {
        assert!(
            api.all_events(g, "location", 10).unwrap().is_empty(),
            "nothing stored under {g}"
        );
    }
    // The login fixed, the kept events go out, each once.
    cfg.uplink_header = Some(login("veh-a"));
    gw.write_config(&cfg.to_toml()).unwrap();
    gw.restart().unwrap();
    let got = || api.all_events("veh-a", "location", 10).unwrap();
    assert!(wait_until(T, || got().len() >= 5), "{}", gw.log());
    std::thread::sleep(Duration::from_millis(500));
    let events = got();
    let unique: HashSet<String> = ids(&events).into_iter().collect();
    assert_eq!((events.len(), unique.len()), (5, 5), "{events:?}");
}

#[test]
fn a_class_the_hub_broker_refuses_waits_in_the_outbox_and_the_other_classes_go_on() {
    // veh-a may publish its locations, state and snapshot, not its presence: the broker
    // answers its presence batches 0x87.
    let acl_dir = tempfile::tempdir().unwrap();
    let acl = acl_dir.path().join("acl");
    std::fs::write(
        &acl,
        "user outpost-hub\ntopic read outpost/v1/+/up/+\ntopic read outpost/v1/+/state\n\
         topic read outpost/v1/+/snapshot\n\
         user veh-a\ntopic write outpost/v1/veh-a/up/location\ntopic write outpost/v1/veh-a/state\n\
         topic write outpost/v1/veh-a/snapshot\n",
    )
    .unwrap();
    let (dir, broker, _hub_redis, hub) = broker_and_hub(&acl);
    let api = hub.api();
    let redis = RedisServer::new().unwrap();
    let devices = Mosquitto::new().unwrap();
    let pw = dir.path().join("veh-a.pw");
    std::fs::write(&pw, "pw-veh-a\n").unwrap();
    let mut cfg =
        GatewayConfig::new("veh-a", &redis.url(), &devices.url(), &broker.url()).mqtt("owntracks");
    cfg.uplink_header = Some(format!(
        "[uplink]\nusername = \"veh-a\"\npassword_file = {:?}\n",
        pw.display().to_string()
    ));
    let before = devices.subscriptions_of(&cfg.devices_client_id);
    let gw = Outpost::start_with(&cfg).unwrap();
    assert!(wait_until(T, || devices
        .subscriptions_of(&cfg.devices_client_id)
        > before));
    // Three phones, 40 fixes each: 120 locations, and each phone's presence (online).
    let phone = Device::connect(&devices.url(), "phones").unwrap();
    let fixes: Vec<(String, String)> = (0..120)
        .map(|i| {
            (
                format!("owntracks/p{}/phone", i % 3),
                format!(
                    r#"{{"_type":"location","tid":"P{}","lat":52.{i:03},"lon":13.4,"tst":{},"acc":5}}"#,
                    i % 3,
                    1_700_000_000 + i
                ),
            )
        })
        .collect();
    phone.publish_many_qos1(fixes).unwrap();
    let accepted = |class: &str| -> u64 {
        let mut c = redis.conn().unwrap();
        redis::cmd("HGET")
            .arg("outpost:stats")
            .arg(format!("accepted:{class}"))
            .query::<Option<u64>>(&mut c)
            .unwrap()
            .unwrap_or(0)
    };
    assert!(wait_until(T, || accepted("location") == 120
        && accepted("presence") >= 3));
    // Presence (drained before location when both wait) is refused; location goes on.
    let locations = || api.all_events("veh-a", "location", 1000).unwrap();
    assert!(
        wait_until(T, || locations().len() == 120),
        "{} of 120 locations at the hub\n{}",
        locations().len(),
        gw.log()
    );
    assert!(
        gw.log().contains("the hub broker refused it"),
        "{}",
        gw.log()
    );
    assert!(api.all_events("veh-a", "presence", 10).unwrap().is_empty());
    let mut c = redis.conn().unwrap();
    let waiting: u64 = redis::cmd("XLEN")
        .arg("outpost:outbox:presence")
        .query(&mut c)
        .unwrap();
    assert!(
        waiting >= 3,
        "refused presence kept in the outbox: {waiting}"
    );
    let ids: HashSet<String> = ids(&locations()).into_iter().collect();
    assert_eq!(ids.len(), 120, "each location once");
}
