//! Who may publish: the shipped hub broker ACL lets a gateway publish only under its own id.

use outpost_system_tests::{wait_until, HubConfig, HubProc, Mosquitto, RedisServer};

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

#[test]
fn shipped_hub_broker_acl_lets_a_gateway_publish_only_as_itself() {
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
    // The ACL exactly as shipped.
    let acl = outpost_system_tests::workspace_root().join("hub/broker/acl");
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
