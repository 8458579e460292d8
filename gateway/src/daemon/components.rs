//! The running components and their reload (SIGHUP): each component is started from the part
//! of the settings it depends on, remembered by a fingerprint of that part; a reload restarts
//! only the components whose part changed. A restarted ingest source stops taking inputs,
//! finishes its Redis writes and acknowledges what was stored; what it had not acknowledged
//! the broker redelivers to its successor (same client id, persistent session): no event lost.

use crate::config::Settings;
use crate::context::Context;
use crate::ingest::mqtt::Route;
use crate::ops::{Component, Metrics};
use crate::store::Store;
use crate::uplink::feed::Feed;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

type Task = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// One planned component: its name, fingerprint, liveness class and task.
struct Planned {
    name: String,
    fingerprint: String,
    kind: Component,
    task: Task,
    token: CancellationToken,
}

struct Running {
    fingerprint: String,
    token: CancellationToken,
    tracker: TaskTracker,
}

/// The set of running components.
pub struct Components {
    store: Store,
    metrics: Arc<Metrics>,
    outbox: Arc<Feed>,
    tak: Arc<crate::tak::Feed>,
    radios: Arc<crate::downlink::radio::Radios>,
    root: CancellationToken,
    running: BTreeMap<String, Running>,
}

impl Components {
    pub fn new(
        store: Store,
        metrics: Arc<Metrics>,
        outbox: Arc<Feed>,
        root: CancellationToken,
    ) -> Self {
        Components {
            store,
            metrics,
            outbox,
            tak: Arc::new(crate::tak::Feed::default()),
            radios: Default::default(),
            root,
            running: BTreeMap::new(),
        }
    }

    /// Starts what `settings` plans and is not running with the same fingerprint; stops what
    /// is no longer planned or changed. Logs what changed.
    pub async fn apply(&mut self, settings: Arc<Settings>) -> anyhow::Result<()> {
        let planned = self.plan(&settings)?;
        let first = self.running.is_empty();
        let names: Vec<String> = planned.iter().map(|p| p.name.clone()).collect();
        let gone: Vec<String> = self
            .running
            .keys()
            .filter(|n| !names.contains(n))
            .cloned()
            .collect();
        for name in gone {
            info!(component = %name, "removed by the new config: stopping");
            self.stop(&name).await;
        }
        for p in planned {
            match self.running.get(&p.name) {
                Some(r) if r.fingerprint == p.fingerprint => continue,
                Some(_) => {
                    info!(component = %p.name, "changed: restarting");
                    self.stop(&p.name).await;
                }
                None if !first => info!(component = %p.name, "added by the new config: starting"),
                None => {}
            }
            self.start(p);
        }
        Ok(())
    }

    fn start(&mut self, p: Planned) {
        let token = p.token;
        let tracker = TaskTracker::new();
        let metrics = self.metrics.clone();
        let name = p.name.clone();
        let (kind, task) = (p.kind, p.task);
        tracker.spawn(async move {
            let _alive = metrics.live.running(kind);
            if let Err(e) = task.await {
                error!(task = %name, error = %format!("{e:#}"), "task failed");
            }
        });
        tracker.close();
        self.running.insert(
            p.name,
            Running {
                fingerprint: p.fingerprint,
                token,
                tracker,
            },
        );
    }

    async fn stop(&mut self, name: &str) {
        if let Some(r) = self.running.remove(name) {
            r.token.cancel();
            if tokio::time::timeout(Duration::from_secs(8), r.tracker.wait())
                .await
                .is_err()
            {
                warn!(component = %name, "did not stop in time");
            }
        }
    }

    /// Stops everything (the root token is already cancelled on shutdown): waits for each.
    pub async fn stop_all(&mut self) {
        let names: Vec<String> = self.running.keys().cloned().collect();
        // Ingest first, so its last writes land before the uplink's final drain window ends.
        for n in names.iter().filter(|n| n.starts_with("ingest")) {
            self.stop(n).await;
        }
        for n in names {
            self.stop(&n).await;
        }
    }

    fn ctx(&self, settings: &Arc<Settings>, token: CancellationToken) -> Context {
        Context {
            settings: settings.clone(),
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            outbox: self.outbox.clone(),
            tak: self.tak.clone(),
            radios: self.radios.clone(),
            token,
        }
    }

    /// What `settings` asks to run; each task has a child token of its own, so it can be
    /// restarted alone.
    fn plan(&self, s: &Arc<Settings>) -> anyhow::Result<Vec<Planned>> {
        let mut out = Vec::new();
        let mut add =
            |name: String, fingerprint: String, kind: Component, f: &dyn Fn(Context) -> Task| {
                let token = self.root.child_token();
                let task = f(self.ctx(s, token.clone()));
                out.push(Planned {
                    name,
                    fingerprint,
                    kind,
                    task,
                    token,
                });
            };
        let uplink_fp = format!("{}|{:?}", s.gateway_id, s.uplinks);
        add("uplink".into(), uplink_fp, Component::Uplink, &|c| {
            Box::pin(crate::uplink::run(c))
        });
        // Its transports and profiles: the device broker, the radios', TAK users'.
        let down_fp = format!(
            "{}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
            s.gateway_id, s.uplink, s.devices_mqtt, s.mqtt, s.serial, s.tak, s.tak_profile
        );
        add("downlink".into(), down_fp, Component::Downlink, &|c| {
            Box::pin(crate::downlink::run(c))
        });
        add(
            "presence".into(),
            String::new(),
            Component::Presence,
            &|c| Box::pin(crate::presence::run(c)),
        );
        add(
            "buffer".into(),
            s.max_events.to_string(),
            Component::Buffer,
            &|c| Box::pin(crate::buffer::run(c)),
        );
        if let (Some(broker), false) = (s.devices_mqtt.clone(), s.mqtt.is_empty()) {
            // Build the routes once here, so a bad one is an error of the reload, not a panic.
            let routes = s
                .mqtt
                .iter()
                .map(Route::new)
                .collect::<anyhow::Result<Vec<_>>>()?;
            let routes = std::sync::Mutex::new(Some(routes));
            let fp = format!("{broker:?}|{:?}", s.mqtt);
            add("ingest:mqtt".into(), fp, Component::Ingest, &|c| {
                let r = routes
                    .lock()
                    .ok()
                    .and_then(|mut g| g.take())
                    .unwrap_or_default();
                Box::pin(crate::ingest::mqtt::run(c, broker.clone(), r))
            });
        }
        for t in &s.tak {
            // The picture and PLIs depend on the gateway id and the profiles too.
            let fp = format!(
                "{}|{t:?}|{:?}|{:?}",
                s.gateway_id,
                s.tak_profile.as_ref().map(|p| p.presence_timeout),
                profile_types(s)
            );
            add(format!("tak:{}", t.name), fp, Component::Serial, &|c| {
                Box::pin(crate::tak::run(c, t.clone()))
            });
        }
        for dev in &s.serial {
            add(
                format!("ingest:serial:{}", dev.device),
                format!("{dev:?}"),
                Component::Serial,
                &|c| Box::pin(crate::ingest::serial::run(c, dev.clone())),
            );
        }
        Ok(out)
    }
}

/// Each used profile's CoT type and presence timeout: a change restarts the TAK outputs.
fn profile_types(s: &Settings) -> Vec<(String, String, Duration)> {
    let mut v: Vec<_> = s
        .mqtt
        .iter()
        .map(|m| &m.profile)
        .chain(s.serial.iter().map(|d| &d.profile))
        .map(|p| (p.name.clone(), p.tak_type().to_string(), p.presence_timeout))
        .collect();
    v.sort();
    v.dedup();
    v
}
