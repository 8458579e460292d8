//! `outpost demo`: the whole system on one machine in about half a minute (SPEC §2). Private
//! `redis-server` and two `mosquitto` (device side, hub side) on free loopback ports in a temp
//! dir; the real daemon (this binary, `outpost run`); simulated devices; the real hub
//! (`outpost-hub` with its own Redis, read through its API); the uplink cut for a while
//! mid-run. Exit 0 only if nothing was lost.

mod devices;
mod gps;
mod hub;
mod procs;
mod proxy;

use anyhow::Context as _;
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// Profiles the demo's devices use, shipped inside the binary.
const PROFILES: [(&str, &str); 4] = [
    (
        "nmea-gps",
        include_str!("../../../device-profiles/nmea-gps.toml"),
    ),
    (
        "owntracks",
        include_str!("../../../device-profiles/owntracks.toml"),
    ),
    (
        "meshtastic",
        include_str!("../../../device-profiles/meshtastic.toml"),
    ),
    (
        "radio-json",
        include_str!("../../../device-profiles/radio-json.toml"),
    ),
];

/// Runs the demo for about `seconds` (plus the drain).
pub fn demo(seconds: u64) -> anyhow::Result<ExitCode> {
    let missing: Vec<&str> = ["redis-server", "mosquitto"]
        .into_iter()
        .filter(|p| !procs::on_path(p))
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "outpost demo needs {} on PATH: sudo apt-get install -y redis-server mosquitto",
            missing.join(" and ")
        );
        return Ok(ExitCode::from(2));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(run(seconds.max(10)))
}

async fn run(seconds: u64) -> anyhow::Result<ExitCode> {
    let dir = tempfile::Builder::new().prefix("outpost-demo-").tempdir()?;
    let d = dir.path();
    println!("Outpost demo: private Redis and brokers in {}", d.display());
    let (_redis, redis_port) = procs::redis(d)?;
    let (_dev_broker, dev_port) = procs::mosquitto(d, "device-broker")?;
    let (_hub_broker, hub_port) = procs::mosquitto(d, "hub-broker")?;
    let link = proxy::Link::start(hub_port).await?;
    let profiles = d.join("profiles");
    std::fs::create_dir_all(&profiles)?;
    for (name, text) in PROFILES {
        std::fs::write(profiles.join(format!("{name}.toml")), text)?;
    }
    let gps = gps::SerialGps::start()?;
    let config = d.join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nid = \"veh-0042\"\nprofiles = \"{}\"\n\n[redis]\nurl = \"redis://127.0.0.1:{redis_port}/0\"\n\n\
             [devices_mqtt]\nurl = \"mqtt://127.0.0.1:{dev_port}\"\n\n[uplink]\nurl = \"mqtt://127.0.0.1:{}\"\nkeep_alive = \"5s\"\n\n\
             [[mqtt]]\nprofile = \"owntracks\"\n\n[[mqtt]]\nprofile = \"meshtastic\"\n\n[[mqtt]]\nprofile = \"radio-json\"\n\n\
             [[serial]]\ndevice = \"gps0\"\npath = \"{}\"\nprofile = \"nmea-gps\"\n",
            profiles.display(),
            link.port,
            gps.path.display()
        ),
    )?;
    let log = d.join("outpost.log");
    // The hub's receivers subscribe first: a broker drops what is published to a shared
    // subscription nobody has joined yet (in the field, receivers' sessions always exist).
    let hub = tokio::task::block_in_place(|| hub::Hub::start(d, hub_port))?;
    let mut outpost = procs::outpost(&config, &log)?;
    let mut devices = devices::Devices::connect(dev_port).await;
    let redis = redis::Client::open(format!("redis://127.0.0.1:{redis_port}/0"))?;
    let mut conn = redis
        .get_multiplexed_async_connection()
        .await
        .context("demo redis")?;
    println!(
        "Devices: 3 OwnTracks phones, 2 Meshtastic radios (relayed twice), 1 handheld radio (JSON)"
    );
    let (cut_at, back_at, stop_at) = (seconds * 3 / 10, seconds * 13 / 20, seconds * 8 / 10);
    let alert_at = (cut_at + back_at) / 2;
    let start = Instant::now();
    let tty = std::io::stdout().is_terminal();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    for t in 0..stop_at {
        tick.tick().await;
        if t == cut_at {
            link.cut();
            line(tty, "uplink CUT: the vehicle drives out of coverage");
        }
        if t == back_at {
            link.restore();
            line(tty, "uplink BACK: draining the outbox, alerts first");
        }
        if t == alert_at {
            line(tty, "EMERGENCY button pressed on radio r7 (uplink down)");
        }
        if t == 3 {
            let id = tokio::task::block_in_place(|| {
                hub.send("!a1b2c3d4", "Engine 7: stage at the north lot")
            });
            line(
                tty,
                &format!("DISPATCH message {id:?} to radio !a1b2c3d4 (through the hub API)"),
            );
        }
        if t == alert_at + 1 {
            let id =
                tokio::task::block_in_place(|| hub.send("!0badcafe", "Crew 2: hold at checkpoint"));
            line(
                tty,
                &format!(
                    "DISPATCH message {id:?} to radio !0badcafe (uplink down: the hub keeps it pending)"
                ),
            );
        }
        devices.tick(t, t == alert_at).await;
        progress(
            tty,
            &start,
            t >= cut_at && t < back_at,
            &devices,
            &hub,
            &mut conn,
        )
        .await;
    }
    // Drain: wait until the hub has everything the gateway accepted.
    let drain_until = Instant::now() + Duration::from_secs(30);
    loop {
        tick.tick().await;
        let (accepted, backlog) = counts(&mut conn).await;
        let at_hub = at_hub(&hub);
        progress(tty, &start, false, &devices, &hub, &mut conn).await;
        let published = devices.stats.published.load(Relaxed);
        if (backlog == 0
            && at_hub >= accepted.values().sum::<u64>()
            && devices.stats.acked.load(Relaxed) >= published)
            || Instant::now() > drain_until
        {
            break;
        }
    }
    if tty {
        println!();
    }
    let clean_exit = outpost.terminate(Duration::from_secs(8));
    let (accepted, backlog) = counts(&mut conn).await;
    let code = summary(&devices, &hub, &accepted, backlog, clean_exit, &log)?;
    if code != ExitCode::SUCCESS {
        let _ = dir.keep(); // leave the logs for inspection
    }
    Ok(code)
}

/// Events of every class the hub stored for the demo's gateway.
fn at_hub(hub: &hub::Hub) -> u64 {
    by_class_at_hub(hub).values().sum()
}

fn by_class_at_hub(hub: &hub::Hub) -> HashMap<String, u64> {
    tokio::task::block_in_place(|| {
        crate::event::Class::ALL
            .iter()
            .map(|c| (c.as_str().to_string(), hub.count(GW, c.as_str())))
            .collect()
    })
}

/// The demo gateway's id.
const GW: &str = "veh-0042";

fn line(tty: bool, msg: &str) {
    if tty {
        print!("\r\x1b[K");
    }
    println!(">> {msg}");
}

/// Accepted events by class (Redis stats) and outbox backlog.
async fn counts(conn: &mut redis::aio::MultiplexedConnection) -> (HashMap<String, u64>, u64) {
    let stats: HashMap<String, u64> = redis::cmd("HGETALL")
        .arg("outpost:stats")
        .query_async(conn)
        .await
        .unwrap_or_default();
    let accepted = stats
        .into_iter()
        .filter_map(|(k, v)| k.strip_prefix("accepted:").map(|c| (c.to_string(), v)))
        .collect();
    let mut backlog = 0;
    for c in crate::event::Class::ALL {
        let n: u64 = redis::cmd("XLEN")
            .arg(format!("outpost:outbox:{c}"))
            .query_async(conn)
            .await
            .unwrap_or(0);
        backlog += n;
    }
    // What is in the streams but already acknowledged is trimmed at once, so XLEN is the backlog.
    (accepted, backlog)
}

async fn progress(
    tty: bool,
    start: &Instant,
    down: bool,
    devices: &devices::Devices,
    hub: &hub::Hub,
    conn: &mut redis::aio::MultiplexedConnection,
) {
    let (accepted, backlog) = counts(conn).await;
    let msg = format!(
        "[{:>3}s] uplink {}  published {:>5}  accepted {:>5}  backlog {:>5}  at hub {:>5}",
        start.elapsed().as_secs(),
        if down { "DOWN" } else { "up  " },
        devices.stats.published.load(Relaxed),
        accepted.values().sum::<u64>(),
        backlog,
        at_hub(hub)
    );
    if tty {
        print!("\r\x1b[K{msg}");
        let _ = std::io::stdout().flush();
    } else if start.elapsed().as_secs() % 3 == 0 {
        println!("{msg}");
    }
}

fn summary(
    devices: &devices::Devices,
    hub: &hub::Hub,
    accepted: &HashMap<String, u64>,
    backlog: u64,
    clean_exit: bool,
    log: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    let stored = by_class_at_hub(hub);
    let total_accepted: u64 = accepted.values().sum();
    let delivered: u64 = stored.values().sum();
    // Accepted but not at the hub: lost (the outbox is empty after the drain, or it was not).
    let lost = total_accepted.saturating_sub(delivered).max(backlog);
    let by_class = |m: &dyn Fn(&str) -> u64| {
        crate::event::Class::ALL
            .iter()
            .map(|c| format!("{c} {}", m(c.as_str())))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (duplicates, alerts) = tokio::task::block_in_place(|| {
        (
            hub.metric("outpost_hub_duplicates_total"),
            hub.get("/api/v1/alerts"),
        )
    });
    // Who is within 3 km of the (newest) emergency.
    let near_q = format!(
        "/api/v1/near?lat={}&lon={}&radius_m=3000",
        alerts[0]["lat"].as_f64().unwrap_or(52.5163),
        alerts[0]["lon"].as_f64().unwrap_or(13.3777)
    );
    let near = tokio::task::block_in_place(|| hub.get(&near_q));
    println!("\nSummary");
    println!(
        "  published by devices         {:>6}  (acknowledged by the device broker: {})",
        devices.stats.published.load(Relaxed),
        devices.stats.acked.load(Relaxed)
    );
    println!(
        "  accepted by the gateway      {:>6}  ({})",
        total_accepted,
        by_class(&|c| accepted.get(c).copied().unwrap_or(0))
    );
    println!(
        "  stored at the hub            {:>6}  ({})",
        delivered,
        by_class(&|c| stored.get(c).copied().unwrap_or(0))
    );
    println!("  duplicates dropped at hub    {:>6}", duplicates);
    println!("  lost                         {:>6}", lost);
    println!(
        "  sendtext publishes seen by the radios: {}",
        devices.stats.downlink.load(Relaxed)
    );
    for (msg, states) in tokio::task::block_in_place(|| hub.receipts(GW)) {
        println!("  receipts for {msg}: {}", states.join(" -> "));
    }
    println!(
        "  gateway stopped cleanly (SIGTERM, exit 0): {}",
        if clean_exit { "yes" } else { "no" }
    );
    println!("\nThe hub API, GET /api/v1/alerts:");
    println!(
        "{}",
        serde_json::to_string_pretty(&alerts).unwrap_or_default()
    );
    println!("\nGET {near_q} (who is within 3 km of the emergency):");
    for d in near.as_array().into_iter().flatten() {
        println!(
            "  {:<12} {:>7.1} m  via {}  last seen {}",
            d["dev"].as_str().unwrap_or("?"),
            d["distance_m"].as_f64().unwrap_or(0.0),
            d["gw"].as_str().unwrap_or("?"),
            d["last_seen"].as_str().unwrap_or("?")
        );
    }
    let alert_ok = alerts.as_array().is_some_and(|a| !a.is_empty());
    if lost == 0 && clean_exit && total_accepted > 0 && alert_ok {
        println!("\nNothing lost.");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("\nFAILED: see the gateway log {}", log.display());
        // Keep the temp dir for inspection.
        Ok(ExitCode::from(2))
    }
}
