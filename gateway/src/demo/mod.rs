//! `outpost demo`: the whole system on one machine in about half a minute (SPEC §2). Private
//! `redis-server` and two `mosquitto` (device side, hub side) on free loopback ports in a temp
//! dir; the real daemon (this binary, `outpost run`); simulated devices; a hub receiver with
//! the SPEC §5 dedup rule; the uplink cut for a while mid-run. Exit 0 only if nothing was lost.

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
             [devices_mqtt]\nurl = \"mqtt://127.0.0.1:{dev_port}\"\n\n[uplink]\nurl = \"mqtt://127.0.0.1:{}\"\nkeep_alive = \"2s\"\n\n\
             [[mqtt]]\nprofile = \"owntracks\"\n\n[[mqtt]]\nprofile = \"meshtastic\"\n\n[[mqtt]]\nprofile = \"radio-json\"\n\n\
             [[serial]]\ndevice = \"gps0\"\npath = \"{}\"\nprofile = \"nmea-gps\"\n",
            profiles.display(),
            link.port,
            gps.path.display()
        ),
    )?;
    let log = d.join("outpost.log");
    let mut outpost = procs::outpost(&config, &log)?;
    let (hub, dispatch) = hub::start(hub_port, "outpost/v1").await?;
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
    let mut link_back = None;
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
            link_back = Some(Instant::now());
            line(tty, "uplink BACK: draining the outbox, alerts first");
        }
        if t == alert_at {
            line(tty, "EMERGENCY button pressed on radio r7 (uplink down)");
        }
        if t == 3 {
            hub::send(
                &dispatch,
                "outpost/v1",
                "demo-1",
                "!a1b2c3d4",
                "Engine 7: stage at the north lot",
            )
            .await;
            line(tty, "DISPATCH message demo-1 to radio !a1b2c3d4");
        }
        if t == alert_at + 1 {
            hub::send(
                &dispatch,
                "outpost/v1",
                "demo-2",
                "!0badcafe",
                "Crew 2: hold at checkpoint",
            )
            .await;
            line(
                tty,
                "DISPATCH message demo-2 to radio !0badcafe (uplink down: the hub broker keeps it)",
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
        let at_hub = lock(&hub).total();
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
    let code = summary(
        &devices, &hub, &accepted, backlog, link_back, clean_exit, &log,
    )?;
    if code != ExitCode::SUCCESS {
        let _ = dir.keep(); // leave the logs for inspection
    }
    Ok(code)
}

fn lock(
    h: &std::sync::Arc<std::sync::Mutex<hub::HubState>>,
) -> std::sync::MutexGuard<'_, hub::HubState> {
    h.lock().unwrap_or_else(|e| e.into_inner())
}

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
    hub: &std::sync::Arc<std::sync::Mutex<hub::HubState>>,
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
        lock(hub).total()
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
    hub: &std::sync::Arc<std::sync::Mutex<hub::HubState>>,
    accepted: &HashMap<String, u64>,
    backlog: u64,
    link_back: Option<Instant>,
    clean_exit: bool,
    log: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    let h = lock(hub);
    let total_accepted: u64 = accepted.values().sum();
    let delivered = h.total();
    // Accepted but not at the hub: lost (the outbox is empty after the drain, or it was not).
    let lost = total_accepted.saturating_sub(delivered).max(backlog);
    let by_class = |m: &dyn Fn(&str) -> u64| {
        crate::event::Class::ALL
            .iter()
            .map(|c| format!("{c} {}", m(c.as_str())))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let first_back = link_back.and_then(|t| h.first_class_after(t).map(str::to_string));
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
        "  delivered to the hub         {:>6}  ({}); {} waited in the outbox (replay)",
        delivered,
        by_class(&|c| h.stored.get(c).copied().unwrap_or(0)),
        h.replayed
    );
    println!("  duplicates dropped at hub    {:>6}", h.duplicates);
    println!("  lost                         {:>6}", lost);
    println!(
        "  alerts at the hub: {}",
        if h.alerts.is_empty() {
            "none".into()
        } else {
            h.alerts.join("; ")
        }
    );
    println!(
        "  first batch after the link came back: {}",
        first_back.as_deref().unwrap_or("none")
    );
    println!("  snapshots received by the hub: {}", h.snapshots);
    println!(
        "  sendtext publishes seen by the radios: {}",
        devices.stats.downlink.load(Relaxed)
    );
    for (msg, states) in &h.receipts {
        println!("  receipts for {msg}: {}", states.join(" -> "));
    }
    println!(
        "  gateway stopped cleanly (SIGTERM, exit 0): {}",
        if clean_exit { "yes" } else { "no" }
    );
    if lost == 0 && clean_exit && total_accepted > 0 {
        println!("\nNothing lost.");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("\nFAILED: see the gateway log {}", log.display());
        // Keep the temp dir for inspection.
        Ok(ExitCode::from(2))
    }
}
