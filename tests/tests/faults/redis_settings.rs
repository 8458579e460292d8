//! Outpost checks the live Redis settings at start and warns, naming each setting, when Redis
//! would not keep the outbox (SPEC §6; the shipped settings: AOF, `appendfsync always`,
//! `noeviction`).

use std::time::Duration;

use outpost_system_tests::{free_port, GatewayConfig, Outpost, RedisServer};

#[test]
fn gateway_warns_when_redis_would_lose_or_evict_the_outbox() {
    let redis = RedisServer::new().unwrap();
    let mut c = redis.conn().unwrap();
    for (k, v) in [
        ("appendfsync", "everysec"),
        ("appendonly", "no"),
        ("maxmemory-policy", "allkeys-lru"),
    ] {
        redis::cmd("CONFIG")
            .arg("SET")
            .arg(k)
            .arg(v)
            .exec(&mut c)
            .unwrap();
    }
    // No brokers: being unable to reach them is not fatal, and not what this test is about.
    let nowhere = format!("mqtt://127.0.0.1:{}", free_port());
    let cfg = GatewayConfig::new("veh-cfg", &redis.url(), &nowhere, &nowhere).mqtt("owntracks");
    let mut outpost = Outpost::start_with(&cfg).unwrap();
    let warned = outpost.wait_for_log("maxmemory-policy", Duration::from_secs(20));
    let log = outpost.log();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("redis is not configured for a durable outbox"))
        .collect();
    for w in &warnings {
        eprintln!("[redis_settings] {w}");
    }
    assert!(warned, "no warning about maxmemory-policy\n{log}");
    for setting in ["appendonly", "appendfsync", "maxmemory-policy"] {
        assert!(
            warnings.iter().any(|w| w.contains(setting)),
            "no warning naming {setting}\n{log}"
        );
    }
    outpost.terminate().unwrap();

    // The shipped settings: no such warning.
    let good = RedisServer::new().unwrap();
    let cfg = GatewayConfig::new("veh-cfg", &good.url(), &nowhere, &nowhere).mqtt("owntracks");
    let mut outpost = Outpost::start_with(&cfg).unwrap();
    assert!(outpost.wait_for_log("redis connected", Duration::from_secs(20)));
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !outpost.log().contains("durable outbox"),
        "warned about correct settings\n{}",
        outpost.log()
    );
    outpost.terminate().unwrap();
}
