//! TLS and authentication to the hub (issue 6): a real `mosquitto` TLS listener with
//! certificates made here with `rcgen`. The hub-side receiver listens on the same broker's
//! plain listener, so what arrives proves the `mqtts://` uplink worked end to end.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use outpost_system_tests::outpost::outpost_command;
use outpost_system_tests::{
    wait_until, Device, GatewayConfig, Hub, Mosquitto, Outpost, RedisServer, TlsListener,
};
use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tempfile::TempDir;

const T: Duration = Duration::from_secs(15);
const PASSWORD: &str = "s3cr3t-hub-pa55word-do-not-log";

/// A throw-away PKI in a temp dir: a CA, server and client certificates signed by it, an
/// expired server certificate, an unrelated CA and an unrelated key.
struct Pki {
    dir: TempDir,
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("outpost-pki-")
            .tempdir()
            .unwrap();
        let pki = Pki { dir };
        let (ca_params, ca_key) = ca("Outpost Test CA");
        pki.write(
            "ca.pem",
            &ca_params.clone().self_signed(&ca_key).unwrap().pem(),
        );
        let issuer = Issuer::new(ca_params, ca_key);
        pki.leaf(&issuer, "server", &["localhost", "127.0.0.1"], false);
        pki.leaf(&issuer, "expired", &["localhost", "127.0.0.1"], true);
        pki.leaf(&issuer, "client", &["veh-tls"], false);
        let (other_params, other_key) = ca("Some Other CA");
        pki.write(
            "other-ca.pem",
            &other_params.self_signed(&other_key).unwrap().pem(),
        );
        pki.write("other.key", &KeyPair::generate().unwrap().serialize_pem());
        pki.write(
            "garbage.key",
            "-----BEGIN PRIVATE KEY-----\nnot base64 at all\n",
        );
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.path(name), text).unwrap();
    }

    /// `<name>.pem` and `<name>.key`, signed by `issuer`; `expired` ones ended in 2021.
    fn leaf(&self, issuer: &Issuer<'_, KeyPair>, name: &str, sans: &[&str], expired: bool) {
        let key = KeyPair::generate().unwrap();
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut p = CertificateParams::new(sans).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        if expired {
            p.not_before = date_time_ymd(2020, 1, 1);
            p.not_after = date_time_ymd(2021, 1, 1);
        }
        let cert = p.signed_by(&key, issuer).unwrap();
        self.write(&format!("{name}.pem"), &cert.pem());
        self.write(&format!("{name}.key"), &key.serialize_pem());
    }

    fn listener(&self, cert: &str, require_certificate: bool) -> TlsListener {
        TlsListener {
            cafile: self.path("ca.pem"),
            certfile: self.path(&format!("{cert}.pem")),
            keyfile: self.path(&format!("{cert}.key")),
            require_certificate,
            password_file: None,
        }
    }
}

fn ca(cn: &str) -> (CertificateParams, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    (p, key)
}

/// Redis, a device broker with a phone on it, and a TLS hub broker with the real hub (on the
/// broker's plain loopback listener).
struct Rig {
    redis: RedisServer,
    devices: Mosquitto,
    hub_broker: Mosquitto,
    hub: Hub,
}

impl Rig {
    fn new(tls: TlsListener) -> Self {
        let hub_broker = Mosquitto::with_tls(tls).unwrap();
        let hub = Hub::start(&hub_broker.url()).unwrap();
        Rig {
            redis: RedisServer::new().unwrap(),
            devices: Mosquitto::new().unwrap(),
            hub_broker,
            hub,
        }
    }

    /// `gateway.toml` with `uplink_keys` (TOML lines) added to `[uplink]`.
    fn config(&self, uplink_keys: &str) -> String {
        GatewayConfig::new(
            "veh-tls",
            &self.redis.url(),
            &self.devices.url(),
            &self.hub_broker.tls_url().unwrap(),
        )
        .mqtt("owntracks")
        .keep_alive("5s")
        .to_toml()
        .replace("[uplink]\n", &format!("[uplink]\n{uplink_keys}\n"))
    }

    /// Publishes a phone fix every 300 ms until the hub has one (the gateway subscribes a
    /// moment after it starts; a clean-session device's message before that goes nowhere).
    fn delivers_a_location(&self) -> bool {
        let d = Device::connect(&self.devices.url(), "phone-anna").unwrap();
        wait_until(T, || {
            let tst = chrono::Utc::now().timestamp();
            let p = format!(r#"{{"_type":"location","lat":52.52,"lon":13.405,"tst":{tst}}}"#);
            d.publish_qos1("owntracks/anna/phone", p).unwrap();
            self.hub
                .wait_for_events("location", 1, Duration::from_millis(300))
        })
    }
}

fn toml_path(p: &Path) -> String {
    serde_json::to_string(&p.to_string_lossy()).unwrap()
}

fn keys(pairs: &[(&str, &Path)]) -> String {
    pairs
        .iter()
        .map(|(k, p)| format!("{k} = {}\n", toml_path(p)))
        .collect()
}

#[test]
fn server_only_tls_delivers_end_to_end() {
    let pki = Pki::new();
    let rig = Rig::new(pki.listener("server", false));
    let gw = Outpost::start(&rig.config(&keys(&[("ca_file", &pki.path("ca.pem"))]))).unwrap();
    assert!(
        rig.delivers_a_location(),
        "no event over mqtts://\n{}",
        gw.log()
    );
    assert!(gw.log().contains("tls=true"), "{}", gw.log());
}

#[test]
fn mutual_tls_delivers_end_to_end() {
    let pki = Pki::new();
    let rig = Rig::new(pki.listener("server", true));
    let cfg = rig.config(&keys(&[
        ("ca_file", &pki.path("ca.pem")),
        ("cert_file", &pki.path("client.pem")),
        ("key_file", &pki.path("client.key")),
    ]));
    let gw = Outpost::start(&cfg).unwrap();
    assert!(
        rig.delivers_a_location(),
        "no event over mutual TLS\n{}\n--- broker\n{}",
        gw.log(),
        rig.hub_broker.log()
    );
}

#[test]
fn mutual_tls_listener_refuses_a_gateway_without_client_certificate() {
    let pki = Pki::new();
    let rig = Rig::new(pki.listener("server", true));
    let gw = Outpost::start(&rig.config(&keys(&[("ca_file", &pki.path("ca.pem"))]))).unwrap();
    assert!(gw.wait_for_log("uplink down", T), "{}", gw.log());
    assert!(!gw.log().contains("uplink connected"), "{}", gw.log());
}

/// The uplink must never come up; the log says why in one clear line.
fn assert_refused(gw: &Outpost, rig: &Rig, why: &str) {
    // One clear uplink line saying why (the downlink's own hub session may log the same TLS
    // error first, in its own line).
    let clear = |log: &str| {
        log.lines()
            .any(|l| l.contains(why) && l.contains("uplink down"))
    };
    assert!(
        outpost_system_tests::wait_until(T, || clear(&gw.log())),
        "expected an uplink line saying {why:?}\n{}",
        gw.log()
    );
    std::thread::sleep(Duration::from_millis(500));
    let log = gw.log();
    assert!(!log.contains("uplink connected"), "{log}");
    assert!(
        rig.hub.gateway_ids().is_empty(),
        "hub saw the gateway: {:?}",
        rig.hub.gateways()
    );
}

#[test]
fn wrong_ca_is_refused() {
    let pki = Pki::new();
    let rig = Rig::new(pki.listener("server", false));
    let cfg = rig.config(&keys(&[("ca_file", &pki.path("other-ca.pem"))]));
    let gw = Outpost::start(&cfg).unwrap();
    assert_refused(&gw, &rig, "UnknownIssuer");
}

#[test]
fn expired_server_certificate_is_refused() {
    let pki = Pki::new();
    let rig = Rig::new(pki.listener("expired", false));
    let gw = Outpost::start(&rig.config(&keys(&[("ca_file", &pki.path("ca.pem"))]))).unwrap();
    assert_refused(&gw, &rig, "certificate expired");
}

/// `outpost run` on `config` must exit 1 at once with `expect` on stderr.
fn assert_exits_1(config: &str, expect: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, config).unwrap();
    outpost_system_tests::outpost_bin().unwrap(); // built before the clock starts
    let started = Instant::now();
    let out: Output = outpost_command()
        .unwrap()
        .arg("run")
        .arg("-c")
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "not at start-up"
    );
    assert!(stderr.contains(expect), "expected {expect:?} in:\n{stderr}");
    assert!(
        stderr.contains("gateway.toml:"),
        "no file:line:col: {stderr}"
    );
    assert!(
        !stderr.contains("outpost starting"),
        "daemon started: {stderr}"
    );
}

/// No servers needed: the TLS material is checked before anything connects.
fn offline_config(uplink_keys: &str) -> String {
    GatewayConfig::new(
        "veh-tls",
        "redis://127.0.0.1:1/0",
        "mqtt://127.0.0.1:1",
        "mqtts://localhost:1",
    )
    .to_toml()
    .replace("[uplink]\n", &format!("[uplink]\n{uplink_keys}\n"))
}

#[test]
fn missing_key_file_stops_run_with_exit_1() {
    let pki = Pki::new();
    let missing = pki.path("nope.key");
    let cfg = offline_config(&keys(&[
        ("ca_file", &pki.path("ca.pem")),
        ("cert_file", &pki.path("client.pem")),
        ("key_file", &missing),
    ]));
    assert_exits_1(
        &cfg,
        &format!("cannot read private key {}", missing.display()),
    );
}

#[test]
fn garbage_key_file_stops_run_with_exit_1() {
    let pki = Pki::new();
    let cfg = offline_config(&keys(&[
        ("ca_file", &pki.path("ca.pem")),
        ("cert_file", &pki.path("client.pem")),
        ("key_file", &pki.path("garbage.key")),
    ]));
    assert_exits_1(&cfg, "cannot read private key");
}

#[test]
fn certificate_key_mismatch_stops_run_with_exit_1() {
    let pki = Pki::new();
    let cfg = offline_config(&keys(&[
        ("ca_file", &pki.path("ca.pem")),
        ("cert_file", &pki.path("client.pem")),
        ("key_file", &pki.path("other.key")),
    ]));
    assert_exits_1(&cfg, "do not match");
}

#[test]
fn tls_files_with_plain_mqtt_url_are_a_config_error() {
    let pki = Pki::new();
    let cfg = offline_config(&keys(&[("ca_file", &pki.path("ca.pem"))]))
        .replace("mqtts://localhost:1", "mqtt://localhost:1");
    assert_exits_1(&cfg, "need an mqtts:// url");
}

/// Runs `outpost run` with `RUST_LOG=trace` (the harness runs at info) until dropped.
struct TraceRun {
    child: Child,
    log: PathBuf,
    _dir: TempDir,
}

impl TraceRun {
    fn start(config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("gateway.toml");
        std::fs::write(&cfg, config).unwrap();
        let log = dir.path().join("outpost.log");
        let f = std::fs::File::create(&log).unwrap();
        let child = outpost_command()
            .unwrap()
            .env("RUST_LOG", "trace")
            .args(["run", "-c"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap();
        TraceRun {
            child,
            log,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }
}

impl Drop for TraceRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn secrets_never_appear_in_logs_even_at_trace() {
    let pki = Pki::new();
    // The hub requires a client certificate and a username/password.
    let passwd = pki.path("mosquitto.passwd");
    let st = Command::new("mosquitto_passwd")
        .args(["-c", "-b"])
        .arg(&passwd)
        .args(["veh-tls", PASSWORD])
        .status()
        .expect("mosquitto_passwd (package mosquitto)");
    assert!(st.success());
    let mut listener = pki.listener("server", true);
    listener.password_file = Some(passwd);
    let rig = Rig::new(listener);
    pki.write("hub.password", &format!("{PASSWORD}\n"));
    let cfg = rig.config(&format!(
        "username = \"veh-tls\"\n{}",
        keys(&[
            ("password_file", &pki.path("hub.password")),
            ("ca_file", &pki.path("ca.pem")),
            ("cert_file", &pki.path("client.pem")),
            ("key_file", &pki.path("client.key")),
        ])
    ));
    let gw = TraceRun::start(&cfg);
    assert!(
        rig.delivers_a_location(),
        "the authenticated uplink did not deliver\n{}",
        rig.hub_broker.log()
    );
    assert!(wait_until(T, || gw.log().contains("uplink connected")));
    let log = gw.log();
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "not verbose"
    );
    assert!(!log.contains(PASSWORD), "hub password in the log");
    let key_pem = std::fs::read_to_string(pki.path("client.key")).unwrap();
    for line in key_pem.lines().filter(|l| !l.starts_with("-----")) {
        assert!(
            !log.contains(line),
            "private key material in the log: {line}"
        );
    }
    // Nor as the byte dumps a Debug of the key or the CONNECT packet would print.
    let pw_bytes = format!("{:?}", PASSWORD.as_bytes());
    assert!(!log.contains(&pw_bytes[1..pw_bytes.len() - 1]));
}
