//! A wire tap on the hub broker: a plain MQTT subscriber that records what a gateway puts on
//! the wire (SPEC §5) — every batch exactly as sent, the `replay` flag, the retained `state`
//! and its will, the snapshot, and the order of all of it.
//!
//! Delivery itself (what was stored, exactly once, in order, latest state, presence) is asserted
//! through the real `outpost-hub` ([`crate::Hub`], its HTTP API). The tap remains only for what
//! that API cannot show: the hub stores events without `replay`, keeps no raw batches, and does
//! not record whether the snapshot came before the first batch after a reconnect or whether a
//! message was delivered retained. Its [`DedupStore`] applies the simple one-receiver form of the
//! §5 rule (highest id per (gateway, class)) so a tap-based test can still tell new from
//! republished events.
//!
//! Connects with a persistent session (clean_session = false, fixed client id), subscribes QoS 1
//! to the uplink topics; reconnects by itself when the hub broker restarts, and the persistent
//! session means nothing published meanwhile is missed.

use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{anyhow, Context};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use serde_json::Value;

use crate::dedup::{Arrival, ConnectOrder, DedupStore, EventId, RawBatch};
use crate::parse_mqtt_url;
use crate::rt::RuntimeThread;

/// Default client id of the tap.
pub const TAP_CLIENT_ID: &str = "outpost-test-wire-tap";

/// A running tap; disconnects on drop (the session stays in the broker).
pub struct WireTap {
    store: Arc<Mutex<DedupStore>>,
    client: AsyncClient,
    // Last field: dropped last, which stops the event loop task.
    _rt: RuntimeThread,
}

impl WireTap {
    /// Connects to `url` (`mqtt://host:port`) as [`TAP_CLIENT_ID`] and subscribes under
    /// `topic_prefix`; returns once the subscription is in place.
    pub fn connect(url: &str, topic_prefix: &str) -> anyhow::Result<Self> {
        Self::connect_as(url, topic_prefix, TAP_CLIENT_ID)
    }

    /// As [`WireTap::connect`], with another client id (e.g. two taps on one broker).
    pub fn connect_as(url: &str, topic_prefix: &str, client_id: &str) -> anyhow::Result<Self> {
        let (host, port) = parse_mqtt_url(url)?;
        let mut opts = MqttOptions::new(client_id, host, port);
        opts.set_clean_session(false)
            .set_keep_alive(Duration::from_secs(5))
            // Batches of 256 events are far above rumqttc's 10 KiB default.
            .set_max_packet_size(64 << 20, 64 << 20);
        let (client, eventloop) = AsyncClient::new(opts, 1024);
        let store = Arc::new(Mutex::new(DedupStore::new(topic_prefix)));
        let rt = RuntimeThread::start("wire-tap")?;
        let (ready_tx, ready_rx) = mpsc::channel();
        let prefix = topic_prefix.trim_end_matches('/').to_string();
        rt.handle().spawn(run(
            eventloop,
            client.clone(),
            prefix,
            store.clone(),
            ready_tx,
        ));
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| anyhow!("wire tap did not connect and subscribe to {url} within 10 s"))?;
        Ok(Self {
            store,
            client,
            _rt: rt,
        })
    }

    /// Locks the store for several reads at once.
    pub fn lock(&self) -> MutexGuard<'_, DedupStore> {
        self.store.lock().expect("hub store lock")
    }

    /// Polls `pred` on the store every 20 ms until it holds or `timeout` passes.
    pub fn wait_for(&self, pred: impl Fn(&DedupStore) -> bool, timeout: Duration) -> bool {
        crate::wait_until(timeout, || pred(&self.lock()))
    }

    /// Waits until at least `n` events of `class` are stored.
    pub fn wait_for_events(&self, class: &str, n: usize, timeout: Duration) -> bool {
        self.wait_for(|h| h.events_of(class).len() >= n, timeout)
    }

    /// Every stored event, all classes, in arrival order.
    pub fn events(&self) -> Vec<Value> {
        self.lock().events().to_vec()
    }

    /// Stored events of one class, in arrival order.
    pub fn events_of(&self, class: &str) -> Vec<Value> {
        self.lock().events_of(class).to_vec()
    }

    /// Events the dedup rule ignored.
    pub fn duplicates_dropped(&self) -> u64 {
        self.lock().duplicates_dropped()
    }

    /// Highest stored id for (gw, class).
    pub fn highest_id(&self, gw: &str, class: &str) -> Option<EventId> {
        self.lock().highest_id(gw, class)
    }

    /// Every batch as received.
    pub fn batches(&self) -> Vec<RawBatch> {
        self.lock().batches().to_vec()
    }

    /// Latest state payload.
    pub fn state(&self) -> Option<Value> {
        self.lock().state().cloned()
    }

    /// Latest snapshot payload.
    pub fn snapshot(&self) -> Option<Value> {
        self.lock().snapshot().cloned()
    }

    /// Everything that arrived, in order.
    pub fn timeline(&self) -> Vec<Arrival> {
        self.lock().timeline().to_vec()
    }

    /// Snapshot-vs-first-batch order for each gateway (re)connect.
    pub fn connect_orders(&self) -> Vec<ConnectOrder> {
        self.lock().connect_orders()
    }

    /// Protocol violations seen; a passing system test expects none.
    pub fn errors(&self) -> Vec<String> {
        self.lock().errors().to_vec()
    }

    /// Publishes as the hub (e.g. to clear a retained topic or, later, for downlink tests);
    /// returns once handed to the client.
    pub fn publish(&self, topic: &str, payload: &[u8], retain: bool) -> anyhow::Result<()> {
        self.client
            .try_publish(topic, QoS::AtLeastOnce, retain, payload.to_vec())
            .context("hub publish")
    }
}

/// The tap's event loop: one task owns it (STYLE rule 8).
async fn run(
    mut eventloop: EventLoop,
    client: AsyncClient,
    prefix: String,
    store: Arc<Mutex<DedupStore>>,
    ready: mpsc::Sender<()>,
) {
    let filters = [
        format!("{prefix}/+/up/#"),
        format!("{prefix}/+/state"),
        format!("{prefix}/+/snapshot"),
    ];
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                store
                    .lock()
                    .expect("hub store lock")
                    .hub_connected(ack.session_present);
                if ack.session_present {
                    let _ = ready.send(());
                } else {
                    // A new session (first connect, or the broker lost it): subscribe again.
                    let subs = filters
                        .iter()
                        .map(|f| rumqttc::SubscribeFilter::new(f.clone(), QoS::AtLeastOnce));
                    let _ = client.subscribe_many(subs).await;
                }
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                let _ = ready.send(());
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                store
                    .lock()
                    .expect("hub store lock")
                    .handle_message(&p.topic, &p.payload, p.retain);
            }
            Ok(_) => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
