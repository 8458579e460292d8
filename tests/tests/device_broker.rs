//! The shipped device broker config (issue 17): `systemd/mosquitto-devices.conf` and its ACL
//! `systemd/mosquitto-devices.acl`, loaded into a real `mosquitto` as Debian loads it (a main
//! config that `include_dir`s conf.d/). Only ports, paths and the LAN interface name (`wlan0` →
//! `lo`) are substituted. Shows: no anonymous access, a device can publish as itself but not as
//! another device (plain and TLS listeners), and the gateway user reads everything.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use outpost_system_tests::{free_port, process, workspace_root};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use tempfile::TempDir;

const T: Duration = Duration::from_secs(10);

/// Device and gateway logins (mosquitto_passwd'ed into the password file).
const USERS: [(&str, &str); 4] = [
    ("anna", "pw-anna"),
    ("ben", "pw-ben"),
    ("r7", "pw-r7"),
    ("outpost", "pw-gateway"),
];

/// The broker: the shipped files under a temp "/etc/mosquitto", three listeners on free ports.
struct Broker {
    dir: TempDir,
    /// (loopback listener, LAN listener, LAN TLS listener) ports, in the conf's order.
    ports: [u16; 3],
    child: Child,
}

impl Broker {
    fn start() -> Broker {
        let dir = tempfile::Builder::new()
            .prefix("outpost-devbroker-")
            .tempdir()
            .unwrap();
        let etc = dir.path();
        std::fs::create_dir_all(etc.join("conf.d")).unwrap();
        std::fs::create_dir_all(etc.join("certs")).unwrap();
        // Distinct: three separate picks once gave one port twice (address in use).
        let ports = outpost_system_tests::free_ports::<3>();
        let shipped = workspace_root().join("systemd");
        let conf = substitute(&read(&shipped.join("mosquitto-devices.conf")), etc, ports);
        std::fs::write(etc.join("conf.d/outpost-devices.conf"), conf).unwrap();
        std::fs::copy(
            shipped.join("mosquitto-devices.acl"),
            etc.join("outpost-devices.acl"),
        )
        .unwrap();
        write_passwords(&etc.join("outpost-devices.passwd"));
        write_certs(etc);
        // What Debian's mosquitto.conf does, plus a log file to read (and staying root when
        // run as root: the temp dir is ours).
        let main = format!(
            "user root\npersistence false\nlog_dest file {d}/mosquitto.log\nlog_type all\n\
             connection_messages true\ninclude_dir {d}/conf.d\n",
            d = etc.display()
        );
        std::fs::write(etc.join("mosquitto.conf"), main).unwrap();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(etc.join("mosquitto.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto not installed: run .ci/run");
        let mut b = Broker { dir, ports, child };
        let up = outpost_system_tests::wait_until(T, || {
            b.log().contains(" running") || b.child.try_wait().unwrap().is_some()
        });
        assert!(up && b.child.try_wait().unwrap().is_none(), "{}", b.log());
        b
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("certs/ca.pem")
    }

    /// `mosquitto_pub` one QoS 1 message on listener `port` (TLS for the third) as `user`.
    fn publish(&self, port: u16, user: Option<&str>, topic: &str, msg: &str) -> Output {
        let mut cmd = Command::new("mosquitto_pub");
        cmd.args(["-h", "localhost", "-p", &port.to_string(), "-q", "1"])
            .args([
                "-t",
                topic,
                "-m",
                msg,
                "-i",
                &format!("pub-{}", free_port()),
            ]);
        if port == self.ports[2] {
            cmd.arg("--cafile").arg(self.ca());
        }
        if let Some(u) = user {
            let pw = USERS.iter().find(|(n, _)| *n == u).map_or("wrong", |p| p.1);
            cmd.args(["-u", u, "-P", pw]);
        }
        cmd.stdin(Stdio::null())
            .output()
            .expect("mosquitto_pub not installed: run .ci/run")
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = process::kill9(&mut self.child);
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The shipped conf with `/etc/mosquitto/` → `etc`, the listeners' ports → `ports` (in order)
/// and the LAN interface → `lo`.
fn substitute(conf: &str, etc: &Path, ports: [u16; 3]) -> String {
    let mut next = ports.iter();
    let etc = format!("{}/", etc.display());
    let lines: Vec<String> = conf
        .lines()
        .map(|l| {
            if l.starts_with("listener ") {
                format!("listener {}", next.next().expect("three listeners"))
            } else {
                l.replace("/etc/mosquitto/", &etc)
                    .replace("bind_interface wlan0", "bind_interface lo")
            }
        })
        .collect();
    assert!(
        next.next().is_none(),
        "the conf has fewer than three listeners"
    );
    lines.join("\n") + "\n"
}

fn write_passwords(path: &Path) {
    std::fs::write(path, "").unwrap();
    for (user, pw) in USERS {
        let st = Command::new("mosquitto_passwd")
            .args(["-b"])
            .arg(path)
            .args([user, pw])
            .status()
            .expect("mosquitto_passwd not installed: run .ci/run");
        assert!(st.success(), "mosquitto_passwd {user}");
    }
}

/// A CA (`certs/ca.pem`) and the broker's certificate for `localhost`, at the conf's paths.
fn write_certs(etc: &Path) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name
        .push(DnType::CommonName, "Outpost Test Device CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    std::fs::write(
        etc.join("certs/ca.pem"),
        ca.clone().self_signed(&ca_key).unwrap().pem(),
    )
    .unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, "localhost");
    let cert = p.signed_by(&key, &issuer).unwrap();
    std::fs::write(etc.join("certs/outpost-devices.crt"), cert.pem()).unwrap();
    std::fs::write(etc.join("certs/outpost-devices.key"), key.serialize_pem()).unwrap();
}

/// The gateway's login on the loopback listener, subscribed to `#`: every message it is
/// allowed to read arrives on the channel as (topic, payload).
fn gateway(port: u16) -> (Client, mpsc::Receiver<(String, String)>) {
    let mut opts = MqttOptions::new("outpost-gw", "127.0.0.1", port);
    opts.set_credentials("outpost", "pw-gateway")
        .set_keep_alive(Duration::from_secs(5));
    let (client, mut conn) = Client::new(opts, 64);
    client.subscribe("#", QoS::AtLeastOnce).unwrap();
    let (tx, rx) = mpsc::channel();
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for ev in conn.iter() {
            match ev {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = ready_tx.send(());
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let body = String::from_utf8_lossy(&p.payload).into_owned();
                    if tx.send((p.topic, body)).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    ready_rx.recv_timeout(T).expect("gateway login subscribed");
    (client, rx)
}

/// Messages until one with payload `marker` arrives (publishes from one client are delivered
/// in order, so anything sent before the marker has been delivered by then, or never will be).
fn until(rx: &mpsc::Receiver<(String, String)>, marker: &str) -> Vec<(String, String)> {
    let deadline = Instant::now() + T;
    let mut got = Vec::new();
    while Instant::now() < deadline {
        if let Ok(m) = rx.recv_timeout(Duration::from_millis(100)) {
            let done = m.1 == marker;
            got.push(m);
            if done {
                return got;
            }
        }
    }
    panic!("marker {marker} never arrived; got {got:?}");
}

#[test]
fn device_a_cannot_publish_as_device_b_but_can_as_itself() {
    let b = Broker::start();
    let (_gw, rx) = gateway(b.ports[0]);
    for port in [b.ports[1], b.ports[2]] {
        // anna as ben: the broker accepts the packet (MQTT 3.1.1 has no refusal) and drops it.
        let forged = format!("forged-{port}");
        let own = format!("own-{port}");
        assert!(b
            .publish(port, Some("anna"), "owntracks/ben/phone", &forged)
            .status
            .success());
        assert!(b
            .publish(port, Some("anna"), "owntracks/anna/phone", &own)
            .status
            .success());
        let got = until(&rx, &own);
        assert!(
            !got.iter().any(|m| m.1 == forged),
            "anna published as ben on port {port}: {got:?}"
        );
        assert_eq!(got.last().unwrap().0, "owntracks/anna/phone");
        // Radios likewise, by their id.
        let forged = format!("r-forged-{port}");
        let own = format!("r-own-{port}");
        assert!(b
            .publish(port, Some("r7"), "radios/r8/status", &forged)
            .status
            .success());
        assert!(b
            .publish(port, Some("anna"), "radios/r7/status", &forged)
            .status
            .success());
        assert!(b
            .publish(port, Some("r7"), "radios/r7/status", &own)
            .status
            .success());
        let got = until(&rx, &own);
        assert!(!got.iter().any(|m| m.1 == forged), "{got:?}");
    }
    // Ben as himself arrives too.
    assert!(b
        .publish(b.ports[1], Some("ben"), "owntracks/ben/phone", "ben-own")
        .status
        .success());
    assert_eq!(
        until(&rx, "ben-own").last().unwrap().0,
        "owntracks/ben/phone"
    );
    assert!(b.log().contains("Denied PUBLISH"), "{}", b.log());
}

#[test]
fn anonymous_and_wrong_passwords_are_refused_on_every_listener() {
    let b = Broker::start();
    for port in b.ports {
        let anon = b.publish(port, None, "owntracks/anna/phone", "x");
        assert!(!anon.status.success(), "anonymous accepted on {port}");
        let err = String::from_utf8_lossy(&anon.stderr).to_lowercase();
        assert!(err.contains("not authori"), "port {port}: {err}");
        let wrong = b.publish(port, Some("mallory"), "owntracks/mallory/phone", "x");
        assert!(!wrong.status.success(), "unknown user accepted on {port}");
    }
}

#[test]
fn only_the_gateway_login_writes_downlink_topics() {
    let b = Broker::start();
    let (_gw, rx) = gateway(b.ports[0]);
    // The gateway may write a device's command topic (OwnTracks locate, SPEC §8)...
    assert!(b
        .publish(
            b.ports[0],
            Some("outpost"),
            "owntracks/anna/phone/cmd",
            "locate"
        )
        .status
        .success());
    assert_eq!(
        until(&rx, "locate").last().unwrap().0,
        "owntracks/anna/phone/cmd"
    );
    // ...but not publish a fix as a device, and ben may not command anna's phone.
    assert!(b
        .publish(
            b.ports[0],
            Some("outpost"),
            "owntracks/anna/phone",
            "gw-fix"
        )
        .status
        .success());
    assert!(b
        .publish(
            b.ports[1],
            Some("ben"),
            "owntracks/anna/phone/cmd",
            "ben-cmd"
        )
        .status
        .success());
    assert!(b
        .publish(b.ports[0], Some("outpost"), "radios/r7/down", "gw-down")
        .status
        .success());
    let got = until(&rx, "gw-down");
    assert!(
        !got.iter().any(|m| m.1 == "gw-fix" || m.1 == "ben-cmd"),
        "{got:?}"
    );
}
