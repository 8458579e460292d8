//! The simulated gateways: one MQTT session each, speaking the uplink protocol (SPEC §5) and
//! nothing else.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use outpost_proto::batch::{payload, Entry};
use outpost_proto::Class;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

use super::{DEVICES, INFLIGHT};
use crate::measure::hub::location_json;

/// One simulated gateway's session.
pub(super) struct SimGw {
    id: String,
    pub(super) client: AsyncClient,
    /// Next event id's sequence (ids `<base ms + seq>-0`, increasing).
    seq: u64,
}

impl SimGw {
    /// The next batch of one fix per device, as (topic, payload, events).
    pub(super) fn batch(&mut self, prefix: &str) -> (String, Vec<u8>) {
        let rx = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let entries: Vec<Entry> = (0..DEVICES)
            .map(|d| {
                self.seq += 1;
                Entry {
                    id: format!("{}-0", 1_764_000_000_000u64 + self.seq),
                    json: location_json(&format!("{}-d{d}", self.id), self.seq as usize, &rx),
                }
            })
            .collect();
        (
            format!("{prefix}/{}/up/location", self.id),
            payload(&self.id, Class::Location, &entries, (0, 0)),
        )
    }
}

/// Connects `n` sessions; each one's event loop runs in its own task and counts PUBACKs.
pub(super) async fn connect_all(
    port: u16,
    n: usize,
    prefix: &str,
    acked: Arc<AtomicU64>,
) -> anyhow::Result<Vec<SimGw>> {
    let mut gws = Vec::with_capacity(n);
    for g in 0..n {
        let id = format!("sim-{g:05}");
        let mut o = MqttOptions::new(&id, "127.0.0.1", port);
        o.set_inflight(INFLIGHT)
            .set_keep_alive(Duration::from_secs(60))
            .set_max_packet_size(1 << 20, 1 << 20)
            .set_clean_session(false);
        o.set_last_will(rumqttc::LastWill::new(
            format!("{prefix}/{id}/state"),
            br#"{"state":"offline"}"#.to_vec(),
            QoS::AtLeastOnce,
            true,
        ));
        let (client, mut el) = AsyncClient::new(o, 64);
        let acked = acked.clone();
        tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        acked.fetch_add(1, Relaxed);
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        });
        let since = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let state = format!(r#"{{"state":"online","version":"sim","since":"{since}"}}"#);
        client
            .publish(
                format!("{prefix}/{id}/state"),
                QoS::AtLeastOnce,
                true,
                state,
            )
            .await?;
        gws.push(SimGw { id, client, seq: 0 });
    }
    Ok(gws)
}
