//! A TAK server restart gets the current picture again (with the uplink down all along), and
//! `ssl://` with a client certificate made here.

use super::common::*;
use super::uids;
use outpost_system_tests::{free_port, HubApi, Rig, TakUser, Taky, TakyTls};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use serde_json::json;
use std::path::Path;

#[test]
fn a_restarted_tak_server_gets_the_current_picture_with_the_uplink_down() {
    let mut taky = Taky::new().unwrap();
    let rig = Rig::new().unwrap();
    let dir = radio_profiles("10m");
    // Nothing listens at the uplink: TAK output does not depend on it.
    let dead_uplink = format!("mqtt://127.0.0.1:{}", free_port());
    let ops = free_port();
    let cfg = config(
        &rig,
        "tak-rs",
        &dead_uplink,
        &dir,
        &tak_table(&taky.url(), ""),
    )
    .ops_listen(&format!("127.0.0.1:{ops}"));
    let gw = rig.start(&cfg).unwrap();
    let radio = rig.device("r1").unwrap();
    let t0 = chrono::Utc::now().timestamp();
    for (i, dev) in ["r1", "r2"].iter().enumerate() {
        let fix = json!({"ts": t0, "lat": 50.0 + i as f64, "lon": 8.5});
        radio
            .publish_qos1(&format!("radios/{dev}/up"), fix.to_string())
            .unwrap();
    }
    let before = TakUser::connect(taky.plain_addr()).unwrap();
    for (i, dev) in ["r1", "r2"].iter().enumerate() {
        let uid = format!("outpost.tak-rs.{dev}");
        before
            .wait_for(T, |e| is_pli_at(e, &uid, 50.0 + i as f64, 8.5))
            .unwrap_or_else(|| panic!("no {uid}: {:?}\n{}", uids(&before), gw.log()));
    }
    drop(before);
    taky.stop().unwrap();
    taky.start().unwrap();
    // The server kept nothing (in-memory persistence): only a resend shows the units again.
    let after = TakUser::connect(taky.plain_addr()).unwrap();
    for (i, dev) in ["r1", "r2"].iter().enumerate() {
        let uid = format!("outpost.tak-rs.{dev}");
        let pli = after
            .wait_for(T, |e| is_pli_at(e, &uid, 50.0 + i as f64, 8.5))
            .unwrap_or_else(|| {
                panic!(
                    "picture not resent ({uid}): {:?}\n{}",
                    uids(&after),
                    gw.log()
                )
            });
        assert_eq!(
            ts(&pli, "time").timestamp(),
            t0,
            "the latest fix, not a new one"
        );
    }
    assert_ne!(
        rig.uplink_state().as_deref(),
        Some("up"),
        "the uplink was never up"
    );
    // The gateway's /metrics counted both connections, the loss and the picture.
    let ops = HubApi::new(&format!("http://127.0.0.1:{ops}"));
    let tak = [("tak", "tak")];
    let m = ops.text("/metrics").unwrap();
    for (name, n) in [
        ("outpost_tak_connects", 2.0),
        ("outpost_tak_disconnects", 1.0),
        // Both units, in the restart's picture (the first connect may come before any fix).
        ("outpost_tak_picture_sent", 2.0),
        ("outpost_tak_up", 1.0),
        ("outpost_tak_queue_dropped", 0.0),
    ] {
        let v = metric(&m, name, &tak);
        assert!(v.is_some_and(|v| v >= n), "{name} = {v:?}, want ≥ {n}\n{m}");
    }
    let plis = metric(&m, "outpost_tak_sent", &[("tak", "tak"), ("kind", "pli")]);
    assert!(plis.is_some_and(|v| v >= 4.0), "{plis:?}\n{m}");
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn ssl_with_a_client_certificate_reaches_the_tak_server() {
    let pki = tempfile::tempdir().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name
        .push(DnType::CommonName, "Outpost TAK Test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_pem = write(
        pki.path(),
        "ca.pem",
        &ca.clone().self_signed(&ca_key).unwrap().pem(),
    );
    let issuer = Issuer::new(ca, ca_key);
    let leaf = |name: &str, sans: &[&str]| {
        let key = KeyPair::generate().unwrap();
        let mut p =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        let cert = p.signed_by(&key, &issuer).unwrap();
        (
            write(pki.path(), &format!("{name}.pem"), &cert.pem()),
            write(pki.path(), &format!("{name}.key"), &key.serialize_pem()),
        )
    };
    let (server_pem, server_key) = leaf("server", &["localhost"]);
    let (client_pem, client_key) = leaf("tak-tls", &["tak-tls"]);
    let taky = Taky::with_tls(TakyTls {
        ca: ca_pem.clone(),
        cert: server_pem,
        key: server_key,
    })
    .unwrap();
    let rig = Rig::new().unwrap();
    let dir = radio_profiles("10m");
    let keys = format!(
        "ca_file = {:?}\ncert_file = {:?}\nkey_file = {:?}",
        ca_pem.display().to_string(),
        client_pem.display().to_string(),
        client_key.display().to_string()
    );
    let cfg = config(
        &rig,
        "tak-tls",
        &rig.uplink_url(),
        &dir,
        &tak_table(&taky.url(), &keys),
    );
    let user = TakUser::connect(taky.plain_addr()).unwrap();
    let gw = rig.start(&cfg).unwrap();
    let radio = rig.device("r5").unwrap();
    let t0 = chrono::Utc::now().timestamp();
    radio
        .publish_qos1(
            "radios/r5/up",
            json!({"ts": t0, "lat": -33.86, "lon": 151.21}).to_string(),
        )
        .unwrap();
    user.wait_for(T, |e| is_pli_at(e, "outpost.tak-tls.r5", -33.86, 151.21))
        .unwrap_or_else(|| {
            panic!(
                "no PLI over ssl://: {:?}\ngateway:\n{}\ntaky:\n{}",
                uids(&user),
                gw.log(),
                taky.log()
            )
        });
    assert!(taky.log().contains("New ssl cot client"), "{}", taky.log());
}
