//! The demo's hub: subscribes to the uplink on the hub broker and applies the SPEC §5 rule —
//! per (gateway, class) keep the highest id stored and ignore anything at or below it.

use crate::store::parse_id;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the hub has seen.
#[derive(Debug, Default)]
pub struct HubState {
    highest: HashMap<String, (u64, u64)>,
    /// Events stored (first time seen), by class.
    pub stored: HashMap<String, u64>,
    /// Events ignored by the high-water rule.
    pub duplicates: u64,
    /// Stored events that had waited in the outbox (`replay`).
    pub replayed: u64,
    /// Arrival order of batches: (when, class).
    pub arrivals: Vec<(Instant, String)>,
    pub snapshots: u64,
    /// Text of stored alerts.
    pub alerts: Vec<String>,
    /// Receipt states per message to a device (`msg_id dev` → states in order).
    pub receipts: Vec<(String, Vec<String>)>,
}

impl HubState {
    /// Total events stored.
    pub fn total(&self) -> u64 {
        self.stored.values().sum()
    }

    /// Class of the first batch that arrived after `t`.
    pub fn first_class_after(&self, t: Instant) -> Option<&str> {
        self.arrivals
            .iter()
            .find(|(at, _)| *at > t)
            .map(|(_, c)| c.as_str())
    }

    fn receipt(&mut self, e: &serde_json::Value) {
        let key = format!(
            "{} to {}",
            e["msg_id"].as_str().unwrap_or("?"),
            e["dev"].as_str().unwrap_or("?")
        );
        let mut state = e["state"].as_str().unwrap_or("?").to_string();
        if let Some(r) = e["reason"].as_str() {
            state = format!("{state} ({r})");
        }
        match self.receipts.iter_mut().find(|(k, _)| *k == key) {
            Some((_, states)) => states.push(state),
            None => self.receipts.push((key, vec![state])),
        }
    }

    fn batch(&mut self, payload: &[u8]) {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload) else {
            return;
        };
        let class = v["class"].as_str().unwrap_or("?").to_string();
        let key = format!("{}/{}", v["gw"].as_str().unwrap_or("?"), class);
        self.arrivals.push((Instant::now(), class.clone()));
        for e in v["events"].as_array().into_iter().flatten() {
            let Some(id) = e["id"].as_str().and_then(parse_id) else {
                continue;
            };
            let high = self.highest.entry(key.clone()).or_insert((0, 0));
            if id <= *high {
                self.duplicates += 1;
                continue;
            }
            *high = id;
            *self.stored.entry(class.clone()).or_default() += 1;
            if e["replay"] == true {
                self.replayed += 1;
            }
            if class == "alert" {
                self.alerts.push(format!("{} {}", e["dev"], e["reason"]));
            }
            if class == "receipt" {
                self.receipt(e);
            }
        }
    }
}

/// The hub's state and its client (a dispatcher publishes down messages with it).
pub type Hub = (Arc<Mutex<HubState>>, AsyncClient);

/// Connects the hub receiver; it runs until the runtime stops.
pub async fn start(port: u16, topic_prefix: &str) -> anyhow::Result<Hub> {
    let mut o = MqttOptions::new("outpost-demo-hub", "127.0.0.1", port);
    o.set_clean_session(false)
        .set_keep_alive(Duration::from_secs(5))
        .set_max_packet_size(64 * 1024 * 1024, 64 * 1024);
    let (client, mut el) = AsyncClient::new(o, 64);
    let state = Arc::new(Mutex::new(HubState::default()));
    let st = state.clone();
    let dispatch = client.clone();
    let up = format!("{topic_prefix}/+/up/#");
    let snap = format!("{topic_prefix}/+/snapshot");
    tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = client.subscribe(&up, QoS::AtLeastOnce).await;
                    let _ = client.subscribe(&snap, QoS::AtLeastOnce).await;
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let mut s = st.lock().unwrap_or_else(|e| e.into_inner());
                    if p.topic.ends_with("/snapshot") {
                        s.snapshots += 1;
                    } else {
                        s.batch(&p.payload);
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    });
    Ok((state, dispatch))
}

/// Publishes a message to device `to` as a dispatcher at the hub would (SPEC §8).
pub async fn send(client: &AsyncClient, topic_prefix: &str, msg_id: &str, to: &str, text: &str) {
    let expires = chrono::Utc::now() + chrono::Duration::minutes(10);
    let m = serde_json::json!({"msg_id": msg_id, "to": to, "text": text, "from": "dispatch",
        "expires": crate::event::format_ts(expires)});
    let topic = format!("{topic_prefix}/veh-0042/down");
    let _ = client
        .publish(topic, QoS::AtLeastOnce, false, m.to_string())
        .await;
}
