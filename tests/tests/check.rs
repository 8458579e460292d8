//! `outpost check` on broken configs and profiles (tests/fixtures/broken/): every problem at
//! once, each as `file:line:col: message`, exit 1 — and exit 0 on the shipped profiles.

use outpost_system_tests::outpost::outpost_command;
use std::path::PathBuf;
use std::process::Output;

fn broken_dir() -> PathBuf {
    outpost_system_tests::workspace_root().join("tests/fixtures/broken")
}

/// `outpost check -c <config>` run in the broken fixtures folder (so paths print short).
fn check(config: &str) -> Output {
    outpost_command()
        .expect("outpost binary")
        .args(["check", "-c", config])
        .current_dir(broken_dir())
        .output()
        .expect("run outpost check")
}

/// Asserts exit 1 and exactly `expected` on stdout.
fn assert_problems(config: &str, expected: &[&str]) {
    let out = check(config);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        expected,
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1));
}

/// A config using the broken profile `name` from [[mqtt]], written next to the profiles.
fn check_profile(name: &str, expected: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("gateway.toml");
    std::fs::write(
        &cfg,
        format!(
            "[gateway]\nid = \"t\"\nprofiles = \"{}\"\n[devices_mqtt]\n[uplink]\nurl = \"mqtt://127.0.0.1:1\"\n[[mqtt]]\nprofile = \"{name}\"\n",
            broken_dir().join("profiles").display()
        ),
    )
    .unwrap();
    let out = check(cfg.to_str().unwrap());
    let prefix = format!("{}/", broken_dir().display());
    let stdout = String::from_utf8_lossy(&out.stdout)
        .replace(&prefix, "")
        .replace(&format!("{}/", dir.path().display()), "");
    let lines: Vec<&str> = stdout.lines().collect();
    let mut want = vec![format!(
        "gateway.toml:8:11: mqtt.profile: {name:?} is invalid (see profiles/{name}.toml)"
    )];
    want.extend(expected.iter().map(|l| format!("profiles/{name}.toml:{l}")));
    assert_eq!(
        lines,
        want,
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn config_bad_duration_is_reported() {
    assert_problems(
        "config-bad-duration.toml",
        &[
            r#"config-bad-duration.toml:7:14: uplink.keep_alive: invalid value: string "half a minute", expected a duration such as "250ms", "30s", "15m" or "2h""#,
        ],
    );
}

#[test]
fn config_bad_topic_filter_is_reported() {
    assert_problems(
        "config-bad-topic-filter.toml",
        &[
            r#"config-bad-topic-filter.toml:12:9: mqtt.topic: "owntracks/#/phone": '#' must be a whole last level"#,
        ],
    );
}

#[test]
fn config_broken_profile_is_reported() {
    assert_problems(
        "config-broken-profile.toml",
        &[
            r#"config-broken-profile.toml:12:11: mqtt.profile: "bad-pointer" is invalid (see profiles/bad-pointer.toml)"#,
            r#"config-broken-profile.toml:17:11: serial.profile: "impossible-values" is invalid (see profiles/impossible-values.toml)"#,
            r#"profiles/bad-pointer.toml:10:11: json.status.battery: JSON Pointer "bat" must be empty or start with '/'"#,
            r#"profiles/bad-pointer.toml:11:8: json.status.rssi: JSON Pointer "/radio/rssi~2": '~' must be followed by 0 or 1 (~0 = '~', ~1 = '/')"#,
            r#"profiles/impossible-values.toml:5:20: presence_timeout: must be at least 1s"#,
            r#"profiles/impossible-values.toml:8:8: serial.baud: must be 50..=4000000"#,
            r#"profiles/impossible-values.toml:9:13: serial.data_bits: must be 5..=8"#,
            r#"profiles/impossible-values.toml:10:13: serial.stop_bits: must be 1 or 2"#,
            r#"profiles/impossible-values.toml:11:19: serial.no_data_timeout: must be at least 1s (a device that pauses would be reopened over and over)"#,
            r#"profiles/impossible-values.toml:14:16: report.min_interval: longer than max_interval"#,
            r#"profiles/impossible-values.toml:16:16: report.min_turn_deg: must be between 0 and 180"#,
        ],
    );
}

#[test]
fn config_duplicate_device_is_reported() {
    assert_problems(
        "config-duplicate-device.toml",
        &[
            r#"config-duplicate-device.toml:14:10: serial.device: "gps0" is named twice"#,
            r#"config-duplicate-device.toml:17:8: serial.baud: must be 50..=4000000"#,
        ],
    );
}

#[test]
fn config_impossible_values_is_reported() {
    assert_problems(
        "config-impossible-values.toml",
        &[
            r#"config-impossible-values.toml:2:6: gateway.id: must match [A-Za-z0-9._-]{1,64}"#,
            r#"config-impossible-values.toml:6:7: redis.url: must start with redis://, rediss:// or redis+unix://"#,
            r#"config-impossible-values.toml:9:7: uplink.url: "https://hub.example.org": scheme must be mqtt:// or mqtts://"#,
            r#"config-impossible-values.toml:10:14: uplink.keep_alive: must be between 5s and 18h12m15s (65535s)"#,
            r#"config-impossible-values.toml:11:20: uplink.batch_max_events: must be between 1 and 10000"#,
            r#"config-impossible-values.toml:12:12: uplink.inflight: must be between 1 and 1000"#,
            r#"config-impossible-values.toml:15:10: ops.listen: must be an address like 127.0.0.1:9108"#,
        ],
    );
}

#[test]
fn config_mismatched_source_is_reported() {
    assert_problems(
        "config-mismatched-source.toml",
        &[
            r#"config-mismatched-source.toml:10:1: [[mqtt]] devices need a [devices_mqtt] broker"#,
            r#"config-mismatched-source.toml:11:11: mqtt.profile: "nmea-gps" (decoder "nmea") is not an MQTT profile; use [[serial]]"#,
            r#"config-mismatched-source.toml:16:11: serial.profile: "owntracks" (decoder "owntracks") is not a serial profile; use [[mqtt]]"#,
        ],
    );
}

#[test]
fn config_missing_profile_is_reported() {
    assert_problems(
        "config-missing-profile.toml",
        &[
            r#"config-missing-profile.toml:11:11: serial.profile: "nmea-gsp" not found (no ../../../device-profiles/nmea-gsp.toml); did you mean "nmea-gps"?"#,
        ],
    );
}

#[test]
fn config_missing_sections_is_reported() {
    assert_problems(
        "config-missing-sections.toml",
        &[
            r#"config-missing-sections.toml:1:1: missing key `gateway`"#,
            r#"config-missing-sections.toml:1:1: missing key `uplink`"#,
        ],
    );
}

#[test]
fn config_unknown_key_is_reported() {
    assert_problems(
        "config-unknown-key.toml",
        &[
            r#"config-unknown-key.toml:4:1: gateway: unknown key `profile`, expected `id` or `profiles`"#,
            r#"config-unknown-key.toml:8:10: redis.prefix: invalid type: integer `7`, expected a string"#,
            r#"config-unknown-key.toml:12:1: uplink: unknown key `keepalive`, expected one of `name`, `url`, `topic_prefix`, `client_id`, `ca_file`, `cert_file`, `key_file`, `username`, `password_file`, `keep_alive`, `batch_max_events`, `inflight`, `max_lag`"#,
        ],
    );
}

#[test]
fn profile_bad_device_id_is_reported() {
    check_profile(
        "bad-device-id",
        &[r#"8:13: mqtt.device_id: "{user}-{device}": {user} is not a topic level number"#],
    );
}

#[test]
fn profile_bad_duration_is_reported() {
    check_profile(
        "bad-duration",
        &[
            r#"5:20: presence_timeout: invalid value: string "5 parsecs", expected a duration such as "250ms", "30s", "15m" or "2h""#,
            r#"8:8: gpsd.port: invalid value: integer `70000`, expected u16"#,
        ],
    );
}

#[test]
fn profile_bad_pointer_is_reported() {
    check_profile(
        "bad-pointer",
        &[
            r#"10:11: json.status.battery: JSON Pointer "bat" must be empty or start with '/'"#,
            r#"11:8: json.status.rssi: JSON Pointer "/radio/rssi~2": '~' must be followed by 0 or 1 (~0 = '~', ~1 = '/')"#,
        ],
    );
}

#[test]
fn profile_bad_topic_filter_is_reported() {
    check_profile(
        "bad-topic-filter",
        &[r#"7:9: mqtt.topic: "msh/#/json": '#' must be a whole last level"#],
    );
}

#[test]
fn profile_device_id_level_is_reported() {
    check_profile(
        "device-id-level",
        &[r#"8:13: mqtt.device_id: {3} is past the levels of topic "owntracks/+/+" (0..=2)"#],
    );
}

#[test]
fn profile_impossible_values_is_reported() {
    check_profile(
        "impossible-values",
        &[
            r#"5:20: presence_timeout: must be at least 1s"#,
            r#"8:8: serial.baud: must be 50..=4000000"#,
            r#"9:13: serial.data_bits: must be 5..=8"#,
            r#"10:13: serial.stop_bits: must be 1 or 2"#,
            r#"11:19: serial.no_data_timeout: must be at least 1s (a device that pauses would be reopened over and over)"#,
            r#"14:16: report.min_interval: longer than max_interval"#,
            r#"16:16: report.min_turn_deg: must be between 0 and 180"#,
        ],
    );
}

#[test]
fn profile_mismatched_section_is_reported() {
    check_profile(
        "mismatched-section",
        &[
            r#"9:1: [mqtt] does not belong in a "nmea" profile: decoder "nmea" reads a serial line"#,
            r#"12:2: [json] does not belong in a "nmea" profile: it holds options of decoder "json""#,
        ],
    );
}

#[test]
fn profile_missing_keys_is_reported() {
    check_profile(
        "missing-keys",
        &[
            r#"1:1: missing key `description`"#,
            r#"1:1: missing key `version`"#,
        ],
    );
}

#[test]
fn profile_not_toml_is_reported() {
    check_profile(
        "not-toml",
        &[
            r#"1:1: missing key `version`"#,
            r#"1:1: missing key `decoder`"#,
            r#"1:17: invalid basic string, expected `"`"#,
        ],
    );
}

#[test]
fn profile_serial_without_baud_is_reported() {
    check_profile(
        "serial-without-baud",
        &[
            r#"4:11: decoder "at-modem" needs a [serial] section with its baud rate"#,
            r#"9:11: at_modem.timeout: must not be longer than at_modem.interval"#,
        ],
    );
}

#[test]
fn profile_bad_keys_is_reported() {
    check_profile(
        "bad-keys",
        &[
            r#"10:17: meshtastic.keys: a channel key is 1 byte (shorthand, e.g. "AQ=="), 16 or 32 bytes; this is 2"#,
            r#"10:25: meshtastic.keys: not base64: Invalid symbol 32, offset 3."#,
            r#"11:15: meshtastic.ack_timeout: must be at least 1s"#,
        ],
    );
}

#[test]
fn profile_unknown_decoder_is_reported() {
    check_profile(
        "unknown-decoder",
        &[
            r#"4:11: decoder: unknown variant `nmea0183`, expected one of `nmea`, `owntracks`, `meshtastic`, `gpsd`, `at-modem`, `json`, `meshtastic-proto`, `meshtastic-serial`, `cot`"#,
        ],
    );
}

#[test]
fn profile_unknown_key_is_reported() {
    check_profile(
        "unknown-key",
        &[
            r#"6:1: unknown key `colour`, expected one of `name`, `description`, `version`, `decoder`, `presence_timeout`, `mqtt`, `serial`, `gpsd`, `report`, `json`, `at_modem`, `meshtastic`, `downlink`, `owntracks`, `tak_type`"#,
            r#"8:1: mqtt: missing key `topic`"#,
            r#"9:1: mqtt: unknown key `topics`, expected `topic` or `device_id`"#,
        ],
    );
}

#[test]
fn profile_wrong_name_is_reported() {
    check_profile(
        "wrong-name",
        &[r#"1:8: name: "ublox" differs from the file name wrong-name.toml"#],
    );
}

#[test]
fn profile_wrong_type_is_reported() {
    check_profile(
        "wrong-type",
        &[
            r#"3:11: version: invalid type: boolean `true`, expected a version number or string, e.g. 1 or "1.2""#,
            r#"5:20: presence_timeout: invalid type: integer `600`, expected a duration such as "250ms", "30s", "15m" or "2h""#,
            r#"8:8: serial.baud: invalid type: string "9600", expected i64"#,
        ],
    );
}

#[test]
fn shipped_profiles_and_a_valid_config_pass() {
    let dir = tempfile::tempdir().unwrap();
    let profiles = outpost_system_tests::workspace_root().join("device-profiles");
    let mut cfg = format!(
        "[gateway]\nid = \"veh-0042\"\nprofiles = \"{}\"\n[devices_mqtt]\n[uplink]\nurl = \"mqtts://hub.example.org\"\n",
        profiles.display()
    );
    let mut n = 0;
    for entry in std::fs::read_dir(&profiles).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        n += 1;
        if text.contains("decoder = \"cot\"") {
            // TAK users' profile: used by a subscribing [[tak]], never by a source.
            cfg.push_str("[[tak]]\nurl = \"tcp://127.0.0.1:8087\"\nsubscribe = true\n");
        } else if text.contains("[mqtt]") {
            cfg.push_str(&format!("[[mqtt]]\nprofile = \"{name}\"\n"));
        } else {
            cfg.push_str(&format!(
                "[[serial]]\ndevice = \"d{n}\"\npath = \"/dev/ttyUSB{n}\"\nprofile = \"{name}\"\n"
            ));
        }
    }
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, cfg).unwrap();
    let out = check(path.to_str().unwrap());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains(&format!("{n} profiles")), "{stdout}");
}

#[test]
fn unreadable_config_is_invalid_input() {
    let out = check("no-such-gateway.toml");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout)
        .starts_with("no-such-gateway.toml:1:1: cannot read config: "));
}

#[test]
fn profile_bad_downlink_is_reported() {
    check_profile(
        "bad-downlink",
        &[
            r#"15:9: downlink.topic: must be a topic name (no wildcards), not empty"#,
            r#"16:11: downlink: unknown placeholder {device}; use {dev}, {msg_id} or {text}"#,
            r#"16:11: downlink.payload: not JSON once filled in (expected value at line 1 column 9); put {text} inside quotes"#,
            r#"17:8: downlink.from: not used by downlink type "json""#,
            r#"18:13: downlink.ack_topic: needs downlink.ack_pointer (where the msg_id is)"#,
        ],
    );
}

#[test]
fn profile_owntracks_options_are_checked() {
    check_profile(
        "owntracks-options",
        &[
            r#"7:9: mqtt.topic: "owntracks/#/event": '#' must be a whole last level"#,
            r#"11:12: owntracks.key_file: cannot read profiles/missing.key: No such file or directory (os error 2)"#,
            r#"12:21: owntracks.transition_status: invalid type: string "yes", expected a boolean"#,
        ],
    );
}
