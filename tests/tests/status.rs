//! `outpost status` against a private Redis holding the documented keys (docs/redis-layout.md):
//! the daemon is not running, as after a crash or before the first start.

use outpost_system_tests::outpost::outpost_command;
use outpost_system_tests::RedisServer;
use std::process::Output;

fn config(dir: &std::path::Path, redis_url: &str) -> std::path::PathBuf {
    let path = dir.join("gateway.toml");
    std::fs::write(
        &path,
        format!(
            "[gateway]\nid = \"veh-0042\"\n[redis]\nurl = \"{redis_url}\"\nprefix = \"op\"\n\
             [uplink]\nurl = \"mqtt://127.0.0.1:1\"\n"
        ),
    )
    .unwrap();
    path
}

fn status(cfg: &std::path::Path, json: bool) -> Output {
    let mut cmd = outpost_command().unwrap();
    cmd.arg("status").arg("-c").arg(cfg);
    if json {
        cmd.arg("--json");
    }
    cmd.output().unwrap()
}

/// The keys a gateway that saw two devices and lost its uplink would have written.
fn populate(redis: &RedisServer, now_ms: i64) {
    let mut c = redis.conn().unwrap();
    let q = |c: &mut redis::Connection, args: &[&str]| {
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query::<redis::Value>(c).unwrap();
    };
    let old = format!("{}-0", now_ms - 125_000);
    let newer = format!("{}-0", now_ms - 5_000);
    let acked = format!("{}-0", now_ms - 200_000);
    q(&mut c, &["XADD", "op:outbox:location", &acked, "e", "{}"]);
    q(&mut c, &["XADD", "op:outbox:location", &old, "e", "{}"]);
    q(&mut c, &["XADD", "op:outbox:location", &newer, "e", "{}"]);
    q(&mut c, &["XADD", "op:outbox:alert", &newer, "e", "{}"]);
    q(
        &mut c,
        &[
            "HSET",
            "op:uplink",
            "state",
            "down",
            "since",
            "2026-01-02T03:04:05.000Z",
        ],
    );
    q(&mut c, &["HSET", "op:uplink", "acked:location", &acked]);
    q(
        &mut c,
        &[
            "HSET",
            "op:stats",
            "accepted:location",
            "3",
            "delivered:location",
            "1",
        ],
    );
    q(&mut c, &["HSET", "op:stats", "accepted:alert", "1"]);
    q(
        &mut c,
        &["HSET", "op:drops", "not_json", "4", "bad_position", "1"],
    );
    q(&mut c, &["SADD", "op:devices", "anna-phone", "gps0"]);
    let seen = (now_ms - 12_000).to_string();
    q(
        &mut c,
        &[
            "HSET",
            "op:dev:anna-phone",
            "presence",
            "online",
            "last_seen",
            &seen,
            "profile",
            "owntracks",
            "location",
            r#"{"dev":"anna-phone","class":"location","lat":51.0626339,"lon":13.6027982,"ts":"2015-08-24T08:40:01.000Z"}"#,
        ],
    );
    let seen = (now_ms - 3_600_000).to_string();
    q(
        &mut c,
        &[
            "HSET",
            "op:dev:gps0",
            "presence",
            "offline",
            "last_seen",
            &seen,
            "profile",
            "nmea-gps",
        ],
    );
}

#[test]
fn status_reads_redis_while_the_daemon_is_down() {
    outpost_system_tests::outpost_bin().unwrap(); // build first: ages are measured from now
    let redis = RedisServer::new().unwrap();
    let now_ms = chrono::Utc::now().timestamp_millis();
    populate(&redis, now_ms);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &redis.url());

    let out = status(&cfg, true);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["gateway"], "veh-0042");
    assert_eq!(v["uplink"]["state"], "down");
    assert_eq!(v["uplink"]["since"], "2026-01-02T03:04:05.000Z");
    let classes = v["classes"].as_array().unwrap();
    let names: Vec<&str> = classes
        .iter()
        .map(|c| c["class"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["alert", "message", "receipt", "presence", "status", "location"]
    );
    let loc = &classes[5];
    assert_eq!(loc["backlog"], 2, "the acknowledged entry is not backlog");
    let age = loc["oldest_age_s"].as_i64().unwrap();
    assert!((125..180).contains(&age), "oldest age {age}");
    assert_eq!(
        (loc["accepted"].as_u64(), loc["delivered"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(classes[0]["backlog"], 1);
    assert_eq!(classes[1]["backlog"], 0);
    assert!(classes[1]["oldest_age_s"].is_null());
    let devs = v["devices"].as_array().unwrap();
    assert_eq!(devs.len(), 2);
    assert_eq!(devs[0]["id"], "anna-phone");
    assert_eq!(devs[0]["state"], "online");
    assert_eq!(devs[0]["profile"], "owntracks");
    assert_eq!(devs[0]["position"]["lat"], 51.0626339);
    assert_eq!(devs[1]["state"], "offline");
    assert!(devs[1]["position"].is_null());
    assert_eq!(
        v["drops"],
        serde_json::json!([["not_json", 4], ["bad_position", 1]])
    );

    let out = status(&cfg, false);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Uplink: down since 2026-01-02T03:04:05.000Z"),
        "{text}"
    );
    let loc_row = text.lines().find(|l| l.starts_with("location")).unwrap();
    let cols: Vec<&str> = loc_row.split_whitespace().collect();
    assert_eq!((cols[1], cols[3], cols[4]), ("2", "3", "1"), "{text}");
    assert!(cols[2].starts_with("2m"), "{text}");
    assert!(text.contains("Devices: 2 (1 online, 1 offline)"), "{text}");
    let anna = text.lines().find(|l| l.starts_with("anna-phone")).unwrap();
    assert!(
        anna.contains("online") && anna.contains("owntracks"),
        "{anna}"
    );
    assert!(anna.ends_with("51.06263,13.60280"), "{anna}");
    assert!(text.contains("not_json"), "{text}");
}

#[test]
fn status_of_an_empty_store_says_so() {
    let redis = RedisServer::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = status(&config(dir.path(), &redis.url()), false);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Uplink: never connected"), "{text}");
    assert!(text.contains("Devices: 0 (0 online, 0 offline)"), "{text}");
    assert!(text.contains("Drops: none"), "{text}");
}

#[test]
fn unreachable_redis_is_a_runtime_failure() {
    let port = outpost_system_tests::free_port();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("redis://127.0.0.1:{port}/0");
    let out = status(&config(dir.path(), &url), false);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot reach Redis at {url}")),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}
