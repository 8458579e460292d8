//! The device-broker transport: Meshtastic `sendtext`, `json` templates and OwnTracks commands
//! go out as QoS 1 publishes on a client of its own (`<devices client id>-down`, persistent
//! session), so ingest's event loop and manual acks stay as they are. `sent` is the broker's
//! PUBACK; `json` profiles with `ack_topic` are subscribed, and an acknowledgement whose
//! `ack_pointer` holds a msg_id is `delivered`.

use super::deliver::{Deliver, Job, Outcome, Refused, Reporter};
use super::render::render;
use crate::config::profile::DownlinkKind;
use crate::config::{Broker, Profile};
use crate::ingest::topic::{matches, DeviceIdTemplate};
use crate::util::{backoff::Backoff, ratelimit::LogGate};
use rumqttc::{AsyncClient, Event, EventLoop, Outgoing, Packet, QoS};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Requests queued to the client at most (messages in flight to the device broker).
const CAP: usize = 256;

/// One acknowledgement subscription of a `json` profile.
struct AckRoute {
    filter: String,
    pointer: String,
    device_id: Option<DeviceIdTemplate>,
}

/// The device-broker transport.
pub struct MqttDeliver {
    client: AsyncClient,
    connected: Arc<AtomicBool>,
    /// (msg_id, dev) of publishes handed to the client, not yet given a packet id.
    unassigned: Arc<Mutex<VecDeque<(String, String)>>>,
}

impl MqttDeliver {
    /// Starts the client's event loop task; reports go to `reporter`.
    pub fn start(
        broker: &Broker,
        profiles: &[Arc<Profile>],
        reporter: Reporter,
        token: CancellationToken,
    ) -> anyhow::Result<MqttDeliver> {
        let mut b = broker.clone();
        b.client_id = format!("{}-down", broker.client_id);
        let mut opts = crate::mqtt_opts::options(&b)?;
        opts.set_clean_session(false)
            .set_max_packet_size(1024 * 1024, 64 * 1024)
            .set_request_channel_capacity(CAP);
        let (client, el) = AsyncClient::new(opts, CAP);
        let acks = ack_routes(profiles);
        let me = MqttDeliver {
            client: client.clone(),
            connected: Arc::new(AtomicBool::new(false)),
            unassigned: Arc::new(Mutex::new(VecDeque::new())),
        };
        let lp = Loop {
            client,
            connected: me.connected.clone(),
            unassigned: me.unassigned.clone(),
            by_pkid: HashMap::new(),
            acks,
            reporter,
        };
        tokio::spawn(lp.run(el, token));
        Ok(me)
    }
}

fn ack_routes(profiles: &[Arc<Profile>]) -> Vec<AckRoute> {
    profiles
        .iter()
        .filter_map(|p| {
            let d = p.downlink()?;
            let filter = d.ack_topic.as_ref()?.get_ref().clone();
            let pointer = d.ack_pointer.as_ref()?.get_ref().clone();
            let device_id = p
                .device_id_template()
                .and_then(|t| DeviceIdTemplate::parse(t).ok());
            Some(AckRoute {
                filter,
                pointer,
                device_id,
            })
        })
        .collect()
}

impl Deliver for MqttDeliver {
    fn name(&self) -> &'static str {
        "devices_mqtt"
    }

    fn handles(&self, kind: DownlinkKind) -> bool {
        matches!(
            kind,
            DownlinkKind::Meshtastic | DownlinkKind::Json | DownlinkKind::Owntracks
        )
    }

    fn reachable(&self, _dev: &str) -> bool {
        self.connected.load(Relaxed)
    }

    fn submit(&self, job: Job) -> Result<(), Refused> {
        let Some(d) = job.profile.downlink() else {
            return Err(Refused::Invalid(Box::new(job), "no_downlink".into()));
        };
        let wire = match render(&job, d) {
            Ok(w) => w,
            Err(reason) => return Err(Refused::Invalid(Box::new(job), reason)),
        };
        // Under the lock, so the queue order is the order the client assigns packet ids.
        let mut q = self.unassigned.lock().expect("downlink lock");
        match self
            .client
            .try_publish(&wire.topic, QoS::AtLeastOnce, false, wire.payload)
        {
            Ok(()) => {
                q.push_back((job.msg_id, job.dev));
                Ok(())
            }
            Err(_) => Err(Refused::Unreachable(Box::new(job))),
        }
    }
}

/// The event loop task (STYLE 8: it alone polls the client).
struct Loop {
    client: AsyncClient,
    connected: Arc<AtomicBool>,
    unassigned: Arc<Mutex<VecDeque<(String, String)>>>,
    by_pkid: HashMap<u16, (String, String)>,
    acks: Vec<AckRoute>,
    reporter: Reporter,
}

impl Loop {
    async fn run(mut self, mut el: EventLoop, token: CancellationToken) {
        let mut backoff = Backoff::default();
        let mut gate = LogGate::default();
        loop {
            let ev = tokio::select! {
                _ = token.cancelled() => break,
                ev = el.poll() => ev,
            };
            match ev {
                Ok(ev) => {
                    backoff.reset();
                    self.on_event(ev).await;
                }
                Err(e) => {
                    self.connected.store(false, Relaxed);
                    let delay = backoff.next_delay();
                    if let Some(s) = gate.check("down-devices") {
                        warn!(error = %e, retry_in = ?delay, suppressed = s, "downlink: device broker connection failed; retrying");
                    }
                    tokio::select! {
                        _ = token.cancelled() => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        let _ = self.client.try_disconnect();
    }

    async fn on_event(&mut self, ev: Event) {
        match ev {
            Event::Incoming(Packet::ConnAck(_)) => {
                info!("downlink: device broker connected");
                for a in &self.acks {
                    let _ = self.client.try_subscribe(&a.filter, QoS::AtLeastOnce);
                }
                self.connected.store(true, Relaxed);
            }
            // A retransmission after a reconnect reuses its packet id: already assigned.
            Event::Outgoing(Outgoing::Publish(pkid)) if !self.by_pkid.contains_key(&pkid) => {
                if let Some(m) = self.unassigned.lock().expect("downlink lock").pop_front() {
                    self.by_pkid.insert(pkid, m);
                }
            }
            Event::Incoming(Packet::PubAck(a)) => {
                if let Some((msg_id, dev)) = self.by_pkid.remove(&a.pkid) {
                    self.reporter
                        .report(&msg_id, Some(&dev), Outcome::Sent)
                        .await;
                }
            }
            Event::Incoming(Packet::Publish(p)) => self.on_ack(&p.topic, &p.payload).await,
            _ => {}
        }
    }

    /// A device's acknowledgement: `delivered` for the msg_id its pointer holds.
    async fn on_ack(&self, topic: &str, payload: &[u8]) {
        let Some(route) = self.acks.iter().find(|a| matches(&a.filter, topic)) else {
            return;
        };
        let v: serde_json::Value = match serde_json::from_slice(payload) {
            Ok(v) => v,
            Err(e) => {
                return debug!(%topic, error = %e, "downlink: acknowledgement is not JSON; ignored")
            }
        };
        let Some(msg_id) = v.pointer(&route.pointer).and_then(|m| m.as_str()) else {
            return debug!(%topic, "downlink: acknowledgement without a msg_id; ignored");
        };
        let dev = route.device_id.as_ref().and_then(|t| t.apply(topic));
        self.reporter
            .report(msg_id, dev.as_deref(), Outcome::Delivered)
            .await;
    }
}
