//! A gateway whose Redis wants a password and a database other than 0, over TCP and over its
//! unix socket: the backlog that built up while the hub was away is read back and delivered.
//! The drain pass reads on a connection of its own (`gateway/src/store/raw.rs`), which must
//! authenticate and select the database itself; events handed to the uplink as they are stored
//! are never read back, so the hub is down while they come in.

use std::time::Duration;

use outpost_system_tests::{RedisServer, Rig};
use serde_json::json;

const N: i64 = 40;
const PASS: &str = "s3cret";

fn backlog_is_read_back_and_delivered(url: impl Fn(&RedisServer) -> String) {
    let mut rig = Rig::new().unwrap();
    let redis = RedisServer::new().unwrap();
    // Set once it answers (the harness's start check pings without a password).
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(PASS)
        .query(&mut redis.conn().unwrap())
        .unwrap();
    let db2 = redis::Client::open(format!("redis://:{PASS}@127.0.0.1:{}/2", redis.port())).unwrap();
    let mut cfg = rig.config().mqtt("owntracks").batch_max_events(8);
    cfg.redis_url = url(&redis);
    let gw = rig.start(&cfg).unwrap();
    rig.stop_hub_broker().unwrap();
    let dev = rig.device("phone").unwrap();
    let msgs: Vec<(String, String)> = (0..N)
        .map(|i| {
            let p = json!({"_type": "location", "lat": 45.0 + i as f64 * 1e-4, "lon": 7.0, "tst": 1_700_000_000 + i});
            ("owntracks/auth/a".to_string(), p.to_string())
        })
        .collect();
    dev.publish_many_qos1(msgs).unwrap();
    // Stored while the hub is away (in the password-protected database, not in 0).
    let stored = outpost_system_tests::wait_until(Duration::from_secs(20), || {
        let n: redis::RedisResult<i64> = db2.get_connection().and_then(|mut c| {
            redis::cmd("XLEN")
                .arg("outpost:outbox:location")
                .query(&mut c)
        });
        n.is_ok_and(|n| n >= N)
    });
    assert!(stored, "backlog not stored; log:\n{}", gw.log());
    rig.hub_broker.start().unwrap();
    let ok = rig.hub.wait_for(
        |h| h.events_of("location").len() as i64 >= N,
        Duration::from_secs(40),
    );
    let got = rig.hub.events_of("location");
    assert!(ok, "{} of {N} delivered; log:\n{}", got.len(), gw.log());
    assert_eq!(got.len() as i64, N, "exactly once");
    assert!(
        !gw.log().contains("cannot read outbox"),
        "the drain's reads failed; log:\n{}",
        gw.log()
    );
}

#[test]
fn over_tcp_with_password_and_database() {
    backlog_is_read_back_and_delivered(|r| format!("redis://:{PASS}@127.0.0.1:{}/2", r.port()));
}

#[test]
fn over_unix_socket_with_password_and_database() {
    backlog_is_read_back_and_delivered(|r| {
        format!(
            "redis+unix://{}?db=2&pass={PASS}",
            r.unix_socket().display()
        )
    });
}
