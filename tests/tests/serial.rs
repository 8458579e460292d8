//! Serial devices end to end (issue 4): pseudo-terminals made by `socat` (a stable symlink,
//! like /dev/serial/by-id, that survives unplug and replug), a real `gpsd`, a scripted modem,
//! the real `outpost` binary, a private Redis and hub broker.

use outpost_system_tests::{
    free_port, pty::Pty, wait_until, GatewayConfig, Hub, Mosquitto, Outpost, RedisServer,
};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

/// A real receiver capture (gpsd regression suite, BSD-2-Clause; see
/// gateway/tests/fixtures/nmea-gpsd/COPYING.gpsd).
fn capture(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../gateway/tests/fixtures/nmea-gpsd")
        .join(name);
    std::fs::read_to_string(p).expect("fixture")
}

/// Writes the `$` lines of a capture, paced like a 9600-baud line (960 bytes/s), `times` over.
fn replay(mut f: std::fs::File, text: String, bytes_per_sec: usize) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for l in text.lines().filter(|l| l.starts_with('$')) {
            let line = format!("{l}\r\n");
            if f.write_all(line.as_bytes()).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_secs_f64(
                line.len() as f64 / bytes_per_sec as f64,
            ));
        }
    })
}

fn profiles(dir: &Path, extra: &[(&str, &str)]) -> PathBuf {
    let p = dir.join("profiles");
    std::fs::create_dir_all(&p).unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../device-profiles/nmea-gps.toml");
    let nmea = std::fs::read_to_string(shipped)
        .unwrap()
        .replace("no_data_timeout = \"10s\"", "no_data_timeout = \"2s\"");
    std::fs::write(p.join("nmea-gps.toml"), nmea).unwrap();
    for (name, text) in extra {
        std::fs::write(p.join(format!("{name}.toml")), text).unwrap();
    }
    p
}

struct World {
    _redis: RedisServer,
    _hub_broker: Mosquitto,
    hub: Hub,
    dir: tempfile::TempDir,
    redis_url: String,
    hub_url: String,
}

fn world() -> World {
    let redis = RedisServer::new().unwrap();
    let hub_broker = Mosquitto::new().unwrap();
    let hub = Hub::start(&hub_broker.url()).unwrap();
    World {
        redis_url: redis.url(),
        hub_url: hub_broker.url(),
        _redis: redis,
        _hub_broker: hub_broker,
        hub,
        dir: tempfile::tempdir().unwrap(),
    }
}

fn config(w: &World, profiles: &Path) -> GatewayConfig {
    // No [[mqtt]] devices: the device broker is never contacted.
    GatewayConfig::new(
        "veh-1",
        &w.redis_url,
        &format!("mqtt://127.0.0.1:{}", free_port()),
        &w.hub_url,
    )
    .profiles(profiles)
    .keep_alive("5s")
}

fn presence_states(hub: &Hub, dev: &str) -> Vec<String> {
    hub.events_of("presence")
        .iter()
        .filter(|e| e["dev"] == dev)
        .map(|e| e["state"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn nmea_receiver_on_a_serial_port_reaches_the_hub_one_location_per_epoch() {
    let w = world();
    let pty = Pty::plug(w.dir.path());
    let cfg = config(&w, &profiles(w.dir.path(), &[])).serial("gps0", &pty.dev, "nmea-gps");
    let _gw = Outpost::start_with(&cfg).unwrap();
    let feeder = replay(pty.open_feed(), capture("nmea-rtk.log"), 20_000);
    feeder.join().unwrap();
    // The capture has 123 epochs with a fix; the first partial line may be lost to framing.
    assert!(
        w.hub.wait_for(|s| s.events_of("location").len() >= 115, T),
        "locations: {}",
        w.hub.events_of("location").len()
    );
    let locs = w.hub.events_of("location");
    assert!(locs
        .iter()
        .all(|e| e["dev"] == "gps0" && e["ts_src"] == "gps"));
    // One per epoch: timestamps strictly increase, no duplicates.
    let ts: Vec<&str> = locs.iter().map(|e| e["ts"].as_str().unwrap()).collect();
    assert!(
        ts.windows(2).all(|p| p[0] < p[1]),
        "epochs out of order or repeated"
    );
    let fixes: std::collections::BTreeSet<&str> =
        locs.iter().filter_map(|e| e["fix"].as_str()).collect();
    assert!(fixes.contains("rtk"), "RTK fixes come through: {fixes:?}");
    assert_eq!(presence_states(&w.hub, "gps0"), ["online"]);
}

#[test]
fn unplugged_gps_goes_offline_and_comes_back_when_replugged() {
    let w = world();
    let pty = Pty::plug(w.dir.path());
    let dev_path = pty.dev.clone();
    let cfg = config(&w, &profiles(w.dir.path(), &[])).serial("gps0", &dev_path, "nmea-gps");
    let gw = Outpost::start_with(&cfg).unwrap();
    let text = capture("nmea-rtk.log");
    let dollar: Vec<&str> = text.lines().filter(|l| l.starts_with('$')).collect();
    let (first, rest) = dollar.split_at(dollar.len() / 2);
    replay(pty.open_feed(), first.join("\n"), 20_000)
        .join()
        .unwrap();
    assert!(w.hub.wait_for(|s| s.events_of("location").len() >= 40, T));
    pty.unplug();
    assert!(
        wait_until(T, || presence_states(&w.hub, "gps0")
            == ["online", "offline"]),
        "offline after unplug: {:?}",
        presence_states(&w.hub, "gps0")
    );
    let before = w.hub.events_of("location").len();
    // Replug: the same stable path appears again and the receiver talks on; Outpost reopens
    // the port (an open flushes what was sent before it, as on a real port) and reads on.
    let pty = Pty::plug(w.dir.path());
    let rest = rest.join("\n");
    let got_more = || w.hub.events_of("location").len() > before + 20;
    for _ in 0..10 {
        replay(pty.open_feed(), rest.clone(), 20_000)
            .join()
            .unwrap();
        if w.hub.wait_for(
            |s| s.events_of("location").len() > before + 20,
            Duration::from_secs(2),
        ) {
            break;
        }
    }
    assert!(
        got_more(),
        "locations after replug: {} -> {}\n{}",
        before,
        w.hub.events_of("location").len(),
        gw.log()
    );
    assert!(wait_until(T, || presence_states(&w.hub, "gps0")
        == ["online", "offline", "online"]));
    assert!(
        gw.log().contains("device port closed; reopening"),
        "{}",
        gw.log()
    );
}

#[test]
fn missing_serial_port_is_a_logged_retry_not_a_crash() {
    let w = world();
    let missing = w.dir.path().join("no-such-tty");
    let cfg = config(&w, &profiles(w.dir.path(), &[])).serial("gps9", &missing, "nmea-gps");
    let mut gw = Outpost::start_with(&cfg).unwrap();
    assert!(
        gw.wait_for_log("cannot open device port; retrying", T),
        "{}",
        gw.log()
    );
    assert!(gw.is_running());
    // The port appears later (plugged in): data flows.
    let pty = Pty::plug(w.dir.path());
    std::os::unix::fs::symlink(&pty.dev, &missing).unwrap();
    replay(pty.open_feed(), capture("nmea-rtk.log"), 20_000)
        .join()
        .unwrap();
    assert!(w.hub.wait_for(|s| s.events_of("location").len() >= 20, T));
}

#[test]
fn gpsd_daemon_fed_by_a_pty_is_a_location_source() {
    let Some(gpsd) = ["/usr/sbin/gpsd", "/usr/bin/gpsd"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        panic!("gpsd is not installed (apt-get install gpsd; .ci/run does it)");
    };
    let w = world();
    let pty = Pty::plug(w.dir.path());
    let port = free_port();
    let mut daemon = Command::new(gpsd)
        .args(["-N", "-n", "-b", "-S", &port.to_string(), "-F"])
        .arg(w.dir.path().join("gpsd.sock"))
        .arg(&pty.dev)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start gpsd");
    let gpsd_profile = "name = \"gpsd\"\ndescription = \"gpsd daemon\"\nversion = 1\ndecoder = \"gpsd\"\npresence_timeout = \"30s\"\n";
    let cfg = config(&w, &profiles(w.dir.path(), &[("gpsd", gpsd_profile)])).serial(
        "gps1",
        format!("127.0.0.1:{port}"),
        "gpsd",
    );
    let _gw = Outpost::start_with(&cfg).unwrap();
    let feeder = replay(pty.open_feed(), capture("nmea-rtk.log"), 5_000);
    let ok = w.hub.wait_for(
        |s| s.events_of("location").len() >= 10,
        Duration::from_secs(30),
    );
    feeder.join().unwrap();
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert!(
        ok,
        "locations via gpsd: {}",
        w.hub.events_of("location").len()
    );
    let locs = w.hub.events_of("location");
    assert!(locs
        .iter()
        .all(|l| l["dev"] == "gps1" && l["lat"].as_f64().is_some_and(|x| x.abs() <= 90.0)));
    // gpsd may report a fix before it knows the date (no `time`): that one carries the
    // gateway's clock; once the receiver's date is known, the time is the receiver's.
    assert!(locs.iter().any(|l| l["ts_src"] == "gps"), "{locs:?}");
}

const MODEM_PROFILE: &str = "name = \"at-modem\"\ndescription = \"test modem\"\nversion = 1\ndecoder = \"at-modem\"\npresence_timeout = \"30s\"\n\
[serial]\nbaud = 115200\nno_data_timeout = \"2s\"\n[at_modem]\nqueries = \"both\"\ninterval = \"1s\"\ntimeout = \"500ms\"\n";

#[test]
fn modem_is_polled_and_signal_quality_becomes_status_despite_errors_and_garbage() {
    let w = world();
    let pty = Pty::plug(w.dir.path());
    let cfg = config(&w, &profiles(w.dir.path(), &[("at-modem", MODEM_PROFILE)]))
        .serial("modem0", &pty.dev, "at-modem");
    let gw = Outpost::start_with(&cfg).unwrap();
    // The scripted modem: answers CSQ and CESQ; every third CESQ gets ERROR, and it sends
    // some garbage and an unsolicited RING between answers.
    let feed = pty.open_feed();
    let mut w_side = feed.try_clone().unwrap();
    let peer = std::thread::spawn(move || {
        let mut r = BufReader::new(feed);
        let mut n = 0;
        let mut line = Vec::new();
        while n < 12 {
            line.clear();
            if r.read_until(b'\r', &mut line).unwrap_or(0) == 0 {
                return;
            }
            let cmd = String::from_utf8_lossy(&line).trim().to_string();
            let answer = match cmd.as_str() {
                "AT+CSQ" => "\r\n+CSQ: 17,99\r\n\r\nOK\r\n".to_string(),
                "AT+CESQ" if n % 3 == 2 => "\r\nERROR\r\n".to_string(),
                "AT+CESQ" => "\r\n+CESQ: 99,99,255,255,31,62\r\n\r\nOK\r\n".to_string(),
                _ => continue,
            };
            n += 1;
            let _ = w_side.write_all(b"\r\nRING\r\n\x01\x02garbage\r\n");
            let _ = w_side.write_all(answer.as_bytes());
        }
    });
    assert!(
        w.hub.wait_for(|s| s.events_of("status").len() >= 3, T),
        "status events: {}",
        gw.log()
    );
    let st = w.hub.events_of("status");
    assert!(st.iter().all(|e| e["dev"] == "modem0" && e["rssi"] == -79));
    assert!(
        st.iter()
            .any(|e| e["extra"]["rsrp"] == -79 && e["extra"]["rsrq"] == -4.5),
        "{st:?}"
    );
    peer.join().unwrap();
    // The modem falls silent: after 3 poll intervals the port is treated as gone.
    assert!(
        wait_until(T, || presence_states(&w.hub, "modem0")
            == ["online", "offline"]),
        "{:?}",
        presence_states(&w.hub, "modem0")
    );
}
