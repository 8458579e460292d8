//! Every shipped profile decodes a real capture or documented payload through the real binary
//! (`outpost decode -p <name> <fixture>`, names looked up in ./device-profiles): exact events
//! for the first few, and the closing count. NMEA expectations agree with gpsd's own TPV output
//! in the fixture's `.chk` file (lat/lon/time/alt); events stamped by the gateway clock
//! (`ts_src` "gateway") have their `ts` masked.

use outpost_system_tests::outpost::outpost_command;
use outpost_system_tests::workspace_root;

/// Decodes `fixture` (under gateway/tests/fixtures) with profile `name`; returns the events
/// (gateway-clock `ts` masked) and the last stderr line.
fn decode(name: &str, fixture: &str) -> (Vec<String>, String) {
    let root = workspace_root();
    let out = outpost_command()
        .unwrap()
        .args(["decode", "-p", name])
        .arg(root.join("gateway/tests/fixtures").join(fixture))
        .current_dir(&root)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let events = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("event is JSON");
            match (v["ts_src"].as_str(), v["ts"].as_str()) {
                (Some("gateway"), Some(ts)) => l.replace(ts, "<gateway clock>"),
                _ => l.to_string(),
            }
        })
        .collect();
    (
        events,
        stderr.lines().last().unwrap_or_default().to_string(),
    )
}

fn assert_decodes(name: &str, fixture: &str, first: &[&str], summary: &str) {
    let (events, last) = decode(name, fixture);
    assert_eq!(last, summary);
    assert_eq!(&events[..first.len()], first);
}

/// Trimble RTK receiver (gpsd's nmea-rtk.log): fix quality 4 comes out as rtk.
#[test]
fn nmea_gps_decodes_a_trimble_rtk_capture() {
    assert_decodes(
        "nmea-gps",
        "nmea-gpsd/nmea-rtk.log",
        &[
            r#"{"dev":"nmea-rtk","class":"location","lat":41.57496591,"lon":-93.750571901,"alt":278.161,"speed":0.076137712,"course":124.888,"hdop":0.9,"fix":"dgps","sats":10,"ts":"2020-03-18T13:28:19.600Z","ts_src":"gps"}"#,
            r#"{"dev":"nmea-rtk","class":"location","lat":41.574965907,"lon":-93.750571903,"alt":278.161,"speed":0.18262762,"course":139.06,"hdop":0.9,"fix":"dgps","sats":10,"ts":"2020-03-18T13:28:19.700Z","ts_src":"gps"}"#,
            r#"{"dev":"nmea-rtk","class":"location","lat":41.574953528,"lon":-93.750575438,"alt":279.884,"speed":0.263909772,"course":126.965,"hdop":1.2,"fix":"dgps","sats":10,"ts":"2020-03-18T13:28:19.800Z","ts_src":"gps"}"#,
        ],
        "122 events, 0 problems",
    );
}

/// u-blox NEO-M9N, four GNSS (gpsd's ublox-neo-m9n-nmea.log).
#[test]
fn ublox_decodes_a_neo_m9n_capture() {
    assert_decodes(
        "ublox",
        "nmea-gpsd/ublox-neo-m9n-nmea.log",
        &[
            r#"{"dev":"ublox-neo-m9n-nmea","class":"location","lat":38.110494,"lon":-122.626897,"alt":83.1,"speed":0.02057776,"hdop":0.54,"acc":1.400142849854971,"fix":"dgps","sats":12,"ts":"2020-07-11T22:37:45.000Z","ts_src":"gps"}"#,
            r#"{"dev":"ublox-neo-m9n-nmea","class":"location","lat":38.110494333,"lon":-122.626897333,"alt":83,"speed":0.031381084000000004,"hdop":0.56,"acc":1.400142849854971,"fix":"dgps","sats":12,"ts":"2020-07-11T22:37:46.000Z","ts_src":"gps"}"#,
            r#"{"dev":"ublox-neo-m9n-nmea","class":"location","lat":38.110494667,"lon":-122.626897667,"alt":83,"speed":0.043213296000000005,"hdop":0.56,"acc":1.400142849854971,"fix":"dgps","sats":12,"ts":"2020-07-11T22:37:47.000Z","ts_src":"gps"}"#,
        ],
        "61 events, 0 problems",
    );
}

/// u-blox ZED-F9P (gpsd's ublox-zed-f9p-nmea.log).
#[test]
fn ublox_decodes_a_zed_f9p_capture() {
    assert_decodes(
        "ublox",
        "nmea-gpsd/ublox-zed-f9p-nmea.log",
        &[
            r#"{"dev":"ublox-zed-f9p-nmea","class":"location","lat":-45.877567167,"lon":170.500111333,"alt":14.2,"speed":0.0128611,"hdop":0.64,"acc":4.188078318274385,"fix":"3d","sats":12,"ts":"2019-04-12T00:39:56.000Z","ts_src":"gps"}"#,
            r#"{"dev":"ublox-zed-f9p-nmea","class":"location","lat":-45.877567167,"lon":170.500112167,"alt":14.2,"speed":0.031381084000000004,"hdop":0.64,"acc":4.188078318274385,"fix":"3d","sats":12,"ts":"2019-04-12T00:39:57.000Z","ts_src":"gps"}"#,
            r#"{"dev":"ublox-zed-f9p-nmea","class":"location","lat":-45.877567167,"lon":170.500112,"alt":14.2,"speed":0.01028888,"hdop":0.71,"acc":4.188078318274385,"fix":"3d","sats":12,"ts":"2019-04-12T00:39:58.000Z","ts_src":"gps"}"#,
        ],
        "29 events, 0 problems",
    );
}

/// GlobalSat BU-353-S4, SiRF IV (gpsd's bu353s4.log).
#[test]
fn globalsat_bu353_decodes_a_sirf_iv_capture() {
    assert_decodes(
        "globalsat-bu353",
        "nmea-gpsd/bu353s4.log",
        &[
            r#"{"dev":"bu353s4","class":"location","lat":-37.784788333,"lon":175.314896667,"alt":59.9,"speed":0.35496636,"course":181.39,"hdop":1.1,"fix":"3d","sats":8,"ts":"2014-12-31T03:07:19.000Z","ts_src":"gps"}"#,
            r#"{"dev":"bu353s4","class":"location","lat":-37.784791667,"lon":175.314896667,"alt":59.8,"speed":0.5916106,"course":181.39,"hdop":1.1,"fix":"3d","sats":8,"ts":"2014-12-31T03:07:20.000Z","ts_src":"gps"}"#,
            r#"{"dev":"bu353s4","class":"location","lat":-37.784793333,"lon":175.31489,"alt":60.1,"speed":0.45785516000000004,"course":181.39,"hdop":1.1,"fix":"3d","sats":8,"ts":"2014-12-31T03:07:21.000Z","ts_src":"gps"}"#,
        ],
        "25 events, 0 problems",
    );
}

/// Garmin 15x, same NMEA family as the 18x, with $PGRME/$PGRMT/$PGRMV (gpsd's garmin15x.log).
#[test]
fn garmin_18x_decodes_and_ignores_pgrm_sentences() {
    assert_decodes(
        "garmin-18x",
        "nmea-gpsd/garmin15x.log",
        &[
            r#"{"dev":"garmin15x","class":"location","lat":32.64858,"lon":-108.37411,"alt":1577.4,"speed":2.7265532,"course":247.1,"hdop":1.1,"fix":"dgps","sats":8,"ts":"2022-10-18T11:32:58.000Z","ts_src":"gps"}"#,
            r#"{"dev":"garmin15x","class":"location","lat":32.648575,"lon":-108.374136667,"alt":1577.9,"speed":2.57222,"course":246.3,"hdop":1.1,"fix":"dgps","sats":8,"ts":"2022-10-18T11:32:59.000Z","ts_src":"gps"}"#,
            r#"{"dev":"garmin15x","class":"location","lat":32.648568333,"lon":-108.374163333,"alt":1578.4,"speed":2.57222,"course":245,"hdop":1.1,"fix":"dgps","sats":8,"ts":"2022-10-18T11:33:00.000Z","ts_src":"gps"}"#,
        ],
        "7 events, 0 problems",
    );
}

/// Quectel EG25-G GNSS port on a PinePhone, parked (gpsd's quectel-eg25-g-2.log): the profile's
/// [report] policy keeps the first fix of the three epochs.
#[test]
fn quectel_gnss_thins_a_parked_eg25_to_one_fix() {
    assert_decodes(
        "quectel-gnss",
        "nmea-gpsd/quectel-eg25-g-2.log",
        &[
            r#"{"dev":"quectel-eg25-g-2","class":"location","lat":60.022279983,"lon":30.236150133,"alt":16.5,"speed":0,"course":0,"hdop":0.9,"fix":"3d","sats":9,"ts":"2022-09-20T05:13:47.000Z","ts_src":"gps"}"#,
        ],
        "1 events, 0 problems",
    );
}

/// gpsd JSON reports (TPV/SKY/GST) copied from gpsd's regression expectations.
#[test]
fn gpsd_decodes_tpv_reports() {
    assert_decodes(
        "gpsd",
        "serial/gpsd-reports.jsonl",
        &[
            r#"{"dev":"gpsd-reports","class":"location","lat":-45.877567167,"lon":170.500111333,"speed":0.013,"fix":"2d","ts":"2019-04-12T00:39:56.000Z","ts_src":"gps"}"#,
            r#"{"dev":"gpsd-reports","class":"location","lat":-45.877567167,"lon":170.500111333,"alt":14.2,"speed":0.013,"acc":12.16,"fix":"3d","ts":"2019-04-12T00:39:56.000Z","ts_src":"gps"}"#,
            r#"{"dev":"gpsd-reports","class":"location","lat":41.57496591,"lon":-93.750571901,"alt":278.161,"hdop":0.64,"acc":4.275,"fix":"dgps","sats":12,"ts":"<gateway clock>","ts_src":"gateway"}"#,
        ],
        "6 events, 1 problems",
    );
}

/// AT+CSQ / AT+CESQ answers of a modem (project data); a capture has no clock, so ts is the
/// gateway's and masked here.
#[test]
fn at_modem_decodes_csq_and_cesq_answers() {
    assert_decodes(
        "at-modem",
        "serial/at-modem.txt",
        &[
            r#"{"dev":"at-modem","class":"status","rssi":-79,"ts":"<gateway clock>","ts_src":"gateway"}"#,
            r#"{"dev":"at-modem","class":"status","extra":{"rsrp":-79,"rsrq":-4.5},"ts":"<gateway clock>","ts_src":"gateway"}"#,
        ],
        "2 events, 1 problems",
    );
}

/// OwnTracks JSON from the booklet and issue reports.
#[test]
fn owntracks_decodes_phone_messages() {
    assert_decodes(
        "owntracks",
        "mqtt/owntracks.txt",
        &[
            r#"{"dev":"anna-phone","class":"location","lat":51.06263391678321,"lon":13.60279820860699,"alt":262,"speed":5,"course":82,"acc":10,"ts":"2015-08-24T08:40:01.000Z","ts_src":"device"}"#,
            r#"{"dev":"anna-phone","class":"status","battery":99,"ts":"2015-08-24T08:40:01.000Z","ts_src":"device"}"#,
            r#"{"dev":"anna-phone","class":"location","lat":51.0629,"lon":13.6041,"speed":6.111111111111111,"course":85,"acc":12,"ts":"2015-08-24T08:41:01.000Z","ts_src":"device"}"#,
        ],
        "9 events, 0 problems",
    );
}

/// Meshtastic MQTT JSON from the project's documentation and issue reports.
#[test]
fn meshtastic_decodes_position_telemetry_and_text() {
    assert_decodes(
        "meshtastic",
        "mqtt/meshtastic.txt",
        &[
            r#"{"dev":"!da65ade0","class":"location","lat":51.772,"lon":0.0395,"alt":85,"ts":"2024-04-28T09:10:45.000Z","ts_src":"device"}"#,
            r#"{"dev":"!7efeb2c8","class":"status","extra":{"air_util_tx":0,"channel_utilization":0,"telemetry":"device"},"ts":"<gateway clock>","ts_src":"gateway"}"#,
            r#"{"dev":"!da65ade0","class":"status","battery":87,"voltage":4.02,"uptime":5210,"extra":{"air_util_tx":0.8,"channel_utilization":3.5,"telemetry":"device"},"ts":"<gateway clock>","ts_src":"gateway"}"#,
        ],
        "4 events, 0 problems",
    );
}

/// What the OwnTracks apps really send (issue 15): string numbers, -1 sentinels, a battery that
/// is not a number, transitions on `…/event`, and the types that carry no event. Every position
/// is kept; the malformed battery fields are reported as dropped, not as problems.
#[test]
fn owntracks_keeps_every_position_the_apps_send() {
    let (events, last) = decode("owntracks", "mqtt/owntracks-apps.txt");
    assert_eq!(last, "14 events, 0 problems, 3 fields dropped");
    let locations = events
        .iter()
        .filter(|e| e.contains(r#""class":"location""#));
    assert_eq!(locations.count(), 7);
    assert_eq!(
        &events[3..5],
        [
            r#"{"dev":"anna-phone","class":"location","lat":51.0629,"lon":13.6041,"acc":65,"ts":"2015-08-24T08:41:01.000Z","ts_src":"device"}"#,
            r#"{"dev":"anna-phone","class":"location","lat":51.0631,"lon":13.6045,"acc":65,"ts":"2015-08-24T08:42:01.000Z","ts_src":"device"}"#,
        ]
    );
    assert_eq!(
        &events[12..14],
        [
            r#"{"dev":"ben-tablet","class":"location","lat":48.85833,"lon":2.29513,"acc":17,"ts":"2017-06-14T21:41:00.000Z","ts_src":"device"}"#,
            r#"{"dev":"ben-tablet","class":"status","extra":{"region":"Staging area","transition":"leave"},"ts":"2017-06-14T21:41:00.000Z","ts_src":"device"}"#,
        ]
    );
}

/// `_type: encrypted` payloads made with libsodium (PyNaCl), decrypted with the profile's
/// `key_file`; the one sealed with another secret is a `decrypt_failed` problem.
#[test]
fn owntracks_decrypts_payloads_with_the_profiles_key_file() {
    let (events, last) = decode(
        "gateway/tests/fixtures/mqtt/owntracks-e2e.toml",
        "mqtt/owntracks-encrypted.txt",
    );
    assert_eq!(last, "4 events, 1 problems");
    assert_eq!(
        events,
        [
            r#"{"dev":"anna-phone","class":"location","lat":51.06263391678321,"lon":13.60279820860699,"alt":262,"speed":5,"course":82,"acc":10,"ts":"2015-08-24T08:40:01.000Z","ts_src":"device"}"#,
            r#"{"dev":"anna-phone","class":"status","battery":99,"ts":"2015-08-24T08:40:01.000Z","ts_src":"device"}"#,
            r#"{"dev":"ben-tablet","class":"location","lat":48.85833,"lon":2.29513,"acc":17,"ts":"2017-06-14T21:41:00.000Z","ts_src":"device"}"#,
            r#"{"dev":"ben-tablet","class":"status","extra":{"region":"Staging area","transition":"leave"},"ts":"2017-06-14T21:41:00.000Z","ts_src":"device"}"#,
        ]
    );
}

/// Meshtastic firmware variants (issue 15): the pre-2.3 and double-slash topics, signed ids,
/// battery 101, environment and power telemetry, omitted zero fields.
#[test]
fn meshtastic_decodes_every_firmware_variant() {
    let (events, last) = decode("meshtastic", "mqtt/meshtastic-firmware.txt");
    assert_eq!(last, "9 events, 0 problems");
    assert_eq!(
        &events[..3],
        [
            r#"{"dev":"!da65ade0","class":"location","lat":51.772,"lon":0.0395,"alt":85,"ts":"2024-04-28T09:13:20.000Z","ts_src":"device"}"#,
            r#"{"dev":"!da65ade0","class":"location","lat":51.772,"lon":0.0395,"alt":85,"ts":"2024-04-28T09:13:20.000Z","ts_src":"device"}"#,
            r#"{"dev":"!da65ade0","class":"status","voltage":4.23,"charging":true,"uptime":86400,"extra":{"air_util_tx":0.6,"channel_utilization":4.1,"external_power":true,"telemetry":"device"},"ts":"<gateway clock>","ts_src":"gateway"}"#,
        ]
    );
    assert!(
        events[3].contains(r#""temperature":21.5"#)
            && events[3].contains(r#""telemetry":"environment""#)
    );
    assert!(events[8].contains(r#""to":"!da65ade0""#), "{}", events[8]);
}

/// gpsd as a client reads it (issue 15): a newer protocol major, several reports on a line,
/// a class the decoder does not know.
#[test]
fn gpsd_decodes_concatenated_reports_of_a_newer_daemon() {
    let (events, last) = decode("gpsd", "serial/gpsd-real.jsonl");
    assert_eq!(last, "2 events, 0 problems");
    assert_eq!(
        events[0],
        r#"{"dev":"gpsd-real","class":"location","lat":38.110494333,"lon":-122.626897333,"alt":83,"speed":0.031,"hdop":0.56,"acc":2.565,"fix":"dgps","sats":16,"ts":"2020-07-11T22:37:46.000Z","ts_src":"gps"}"#
    );
}

/// The documented payload of the json example; sos = true raises an alert.
#[test]
fn radio_json_maps_status_location_and_the_sos_button() {
    assert_decodes(
        "radio-json",
        "mqtt/radio-json.txt",
        &[
            r#"{"dev":"r17","class":"status","battery":81,"rssi":-71,"channel":3,"ts":"2023-11-14T22:13:20.000Z","ts_src":"device"}"#,
            r#"{"dev":"r17","class":"location","lat":52.52,"lon":13.4,"ts":"2023-11-14T22:13:20.000Z","ts_src":"device"}"#,
            r#"{"dev":"r17","class":"alert","reason":"emergency","lat":52.5203,"lon":13.4011,"ts":"2023-11-14T22:14:20.000Z","ts_src":"device"}"#,
        ],
        "6 events, 1 problems",
    );
}

/// TAK users from a saved CoT stream: PLI (and its battery), 911, cancel, GeoChat; a chat to
/// someone else, a marker, a receipt and a broken event are reported, not taken in.
#[test]
fn tak_decodes_a_cot_stream() {
    assert_decodes(
        "tak",
        "cot/atak-stream.xml",
        &[
            r#"{"dev":"tak:ANDROID-589520ccfcd20f01","class":"location","lat":42.3601,"lon":-71.0589,"alt":31.5,"speed":1.5,"course":90,"acc":8,"ts":"2026-12-01T12:00:00.000Z","ts_src":"device"}"#,
            r#"{"dev":"tak:ANDROID-589520ccfcd20f01","class":"status","battery":88,"extra":{"callsign":"VIPER"},"ts":"2026-12-01T12:00:00.000Z","ts_src":"device"}"#,
            r#"{"dev":"tak:ANDROID-589520ccfcd20f01","class":"alert","reason":"emergency","text":"911 Alert from VIPER","lat":42.3602,"lon":-71.059,"ts":"2026-12-01T12:01:00.000Z","ts_src":"device"}"#,
            r#"{"dev":"tak:ANDROID-589520ccfcd20f01","class":"status","extra":{"note":"emergency cancelled by VIPER"},"ts":"2026-12-01T12:02:00.000Z","ts_src":"device"}"#,
            r#"{"dev":"tak:ANDROID-589520ccfcd20f01","class":"message","text":"Road closed at <Main & 5th> — use the bypass","to":"All Chat Rooms","msg_id":"5d3b2c0e","ts":"2026-12-01T12:03:00.000Z","ts_src":"device"}"#,
        ],
        "5 events, 4 problems",
    );
}

#[test]
fn there_are_at_least_ten_profiles_and_each_is_tested_here() {
    let src = include_str!("decode_profiles.rs");
    let mut n = 0;
    for e in std::fs::read_dir(workspace_root().join("device-profiles")).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        assert!(
            src.contains(&format!("assert_decodes(\n        \"{name}\"")),
            "profile {name} has no decode test"
        );
        n += 1;
    }
    assert!(n >= 10, "{n} profiles");
}
