//! Who may call the API: bearer tokens with `read` and `dispatch` roles.

use outpost_system_tests::{HubConfig, HubProc, Mosquitto, RedisServer};
use serde_json::json;
#[test]
fn api_tokens_read_and_dispatch() {
    let redis = RedisServer::new().unwrap();
    let broker = Mosquitto::new().unwrap();
    let mut cfg = HubConfig::new("h1", &broker.url(), vec![redis.url()]);
    cfg.tokens = Some(
        "# consoles\nconsole-7 read r3ad-0123456789abcdef\nchief dispatch d15p-0123456789abcdef\n"
            .into(),
    );
    let hub = HubProc::start(&cfg).unwrap();
    let api = hub.api();
    assert_eq!(api.get("/api/v1/devices").unwrap().0, 401);
    assert_eq!(
        api.with_token("wrong-0123456789abcdef")
            .get("/api/v1/devices")
            .unwrap()
            .0,
        401
    );
    assert_eq!(
        api.with_token("r3ad-0123456789abcdef")
            .get("/api/v1/devices")
            .unwrap()
            .0,
        200
    );
    let msg = json!({"gw": "veh-1", "to": "r7", "text": "hello"});
    assert_eq!(
        api.with_token("r3ad-0123456789abcdef")
            .post("/api/v1/messages", &msg)
            .unwrap()
            .0,
        403
    );
    assert_ne!(
        api.with_token("d15p-0123456789abcdef")
            .post("/api/v1/messages", &msg)
            .unwrap()
            .0,
        403
    );
    assert_eq!(api.get("/metrics").unwrap().0, 200, "metrics need no token");
    assert_eq!(
        api.get("/healthz").unwrap().0,
        200,
        "healthz needs no token"
    );
}
