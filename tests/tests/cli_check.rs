//! The technician's tools (SPEC §2, §3): `outpost check` places every problem at
//! `file:line:col`, `outpost decode` turns a capture into §5 event lines.

use std::io::Write;
use std::path::Path;
use std::process::{Output, Stdio};

use outpost_system_tests::outpost::outpost_command;
use outpost_system_tests::{workspace_root, GatewayConfig, ProfileDir};
use serde_json::{json, Value};

fn config() -> GatewayConfig {
    // Endpoints are never contacted by `check`.
    GatewayConfig::new(
        "veh-0042",
        "redis://127.0.0.1:1/0",
        "mqtt://127.0.0.1:2",
        "mqtt://127.0.0.1:3",
    )
    .mqtt("owntracks")
    .mqtt("meshtastic")
}

fn check(path: &Path) -> (Option<i32>, String) {
    let out = outpost_command()
        .unwrap()
        .arg("check")
        .arg("-c")
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    // Problems may go to stdout or stderr; both are the user's terminal.
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

/// 1-based number of the first line of `text` that starts with `prefix`.
fn line_of(text: &str, prefix: &str) -> usize {
    text.lines()
        .position(|l| l.starts_with(prefix))
        .expect("line present")
        + 1
}

#[test]
fn check_accepts_a_valid_config_with_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, config().to_toml()).unwrap();
    let (code, out) = check(&path);
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn check_points_at_an_unknown_config_key_with_file_line_col_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    let text = config()
        .to_toml()
        .replace("topic_prefix = ", "retry_jitter = true\ntopic_prefix = ");
    std::fs::write(&path, &text).unwrap();
    let line = line_of(&text, "retry_jitter");

    let (code, out) = check(&path);
    assert_eq!(code, Some(1), "{out}");
    let at = format!("{}:{line}:1: ", path.display());
    let hit = out.lines().find(|l| l.starts_with(&at));
    assert!(hit.is_some(), "no line starting with {at:?} in:\n{out}");
    assert!(
        hit.unwrap().contains("retry_jitter"),
        "message names the key: {out}"
    );
}

#[test]
fn check_points_at_an_unknown_key_inside_a_profile() {
    let profiles = ProfileDir::copy().unwrap();
    profiles.set("meshtastic", "colour", "\"red\"").unwrap();
    let ptext = std::fs::read_to_string(profiles.file("meshtastic")).unwrap();
    let line = line_of(&ptext, "colour");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, config().profiles(profiles.path()).to_toml()).unwrap();

    let (code, out) = check(&path);
    assert_eq!(code, Some(1), "{out}");
    let at = format!("{}:{line}:1: ", profiles.file("meshtastic").display());
    assert!(
        out.lines()
            .any(|l| l.starts_with(&at) && l.contains("colour")),
        "no line starting with {at:?} in:\n{out}"
    );
}

#[test]
fn check_reports_every_problem_not_just_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    let cfg = GatewayConfig::new(
        "veh 42!",
        "redis://127.0.0.1:1/0",
        "mqtt://127.0.0.1:2",
        "mqtt://127.0.0.1:3",
    )
    .mqtt("no-such-profile");
    let text = cfg.to_toml();
    std::fs::write(&path, &text).unwrap();

    let (code, out) = check(&path);
    assert_eq!(code, Some(1), "{out}");
    let file = path.display().to_string();
    let id_line = line_of(&text, "id = ");
    let profile_line = line_of(&text, "profile = \"no-such-profile\"");
    let located = |line: usize| {
        out.lines()
            .any(|l| l.starts_with(&format!("{file}:{line}:")))
    };
    assert!(
        located(id_line),
        "bad gateway id not reported at line {id_line}:\n{out}"
    );
    assert!(
        located(profile_line),
        "missing profile not reported at line {profile_line}:\n{out}"
    );
}

const CAPTURE: &str = r#"# OwnTracks capture
owntracks/anna/phone {"tst":1440405601,"acc":10,"_type":"location","alt":262,"lon":13.60279820860699,"vac":6,"vel":18,"lat":51.06263391678321,"cog":82,"tid":"NE","batt":99}
owntracks/ben/tablet {"_type":"transition","wtst":1497470000,"lat":48.85833,"lon":2.29513,"tst":1497476460,"acc":17,"event":"leave","desc":"Staging area","t":"c","tid":"BT"}
"#;

fn expected_events() -> Vec<Value> {
    vec![
        json!({"dev":"anna-phone","class":"location","lat":51.06263391678321,"lon":13.60279820860699,
               "alt":262,"speed":5,"course":82,"acc":10,"ts":"2015-08-24T08:40:01.000Z","ts_src":"device"}),
        json!({"dev":"anna-phone","class":"status","battery":99,"ts":"2015-08-24T08:40:01.000Z","ts_src":"device"}),
        // A transition: where the device was, then the region it crossed (issue 15).
        json!({"dev":"ben-tablet","class":"location","lat":48.85833,"lon":2.29513,"acc":17,
               "ts":"2017-06-14T21:41:00.000Z","ts_src":"device"}),
        json!({"dev":"ben-tablet","class":"status","extra":{"transition":"leave","region":"Staging area"},
               "ts":"2017-06-14T21:41:00.000Z","ts_src":"device"}),
    ]
}

/// Numbers compared by value (262 and 262.0 are the same number of metres).
fn normalized(v: &Value) -> Value {
    match v {
        Value::Number(n) => json!(n.as_f64().unwrap()),
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), normalized(v))).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(normalized).collect()),
        other => other.clone(),
    }
}

fn events_of(out: &Output) -> Vec<Value> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line {l:?}: {e}")))
        .collect()
}

fn decode(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = outpost_command()
        .unwrap()
        .arg("decode")
        .args(args)
        .current_dir(workspace_root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

#[test]
fn decode_prints_one_event_json_line_per_event_of_an_owntracks_capture() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("capture.txt");
    std::fs::write(&file, CAPTURE).unwrap();
    let out = decode(&["-p", "owntracks", file.to_str().unwrap()], None);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Vec<Value> = events_of(&out).iter().map(normalized).collect();
    let want: Vec<Value> = expected_events().iter().map(normalized).collect();
    assert_eq!(got, want);
}

#[test]
fn decode_reads_stdin_and_reports_bad_lines_with_their_number() {
    let capture =
        format!("{CAPTURE}owntracks/ben/tablet {{\"_type\":\"location\",\"lat\":95,\"lon\":2}}\n");
    let out = decode(&["-p", "owntracks"], Some(&capture));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        events_of(&out).len(),
        4,
        "good lines still decode; stderr: {stderr}"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("line 4") && l.contains("bad_position")),
        "problem with its line number on stderr: {stderr}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("\"lat\":95"));
}

#[test]
fn decode_of_the_meshtastic_fixture_names_the_originating_node() {
    let fixture = workspace_root().join("gateway/tests/fixtures/mqtt/meshtastic.txt");
    let out = decode(&["-p", "meshtastic", fixture.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(0));
    let events = events_of(&out);
    let classes: Vec<&str> = events
        .iter()
        .map(|e| e["class"].as_str().unwrap())
        .collect();
    assert!(
        classes.contains(&"location") && classes.contains(&"message"),
        "{classes:?}"
    );
    for e in &events {
        assert!(
            e.get("id").is_none() && e.get("rx").is_none(),
            "decode prints no id/rx: {e}"
        );
    }
    let text = events.iter().find(|e| e["class"] == "message").unwrap();
    assert_eq!(text["dev"], "!da65ade0");
    assert_eq!(text["text"], "Engine 7 on scene, staging north lot");
}
