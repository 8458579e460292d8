//! Simulated field devices for the demo: OwnTracks phones driving around, Meshtastic radios
//! (positions relayed by two gateway radios, telemetry, text), and a handheld radio whose
//! emergency button is pressed while the uplink is down.

use chrono::Utc;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// Counts of what the simulated devices published and the broker acknowledged.
#[derive(Debug, Default)]
pub struct DeviceStats {
    pub published: AtomicU64,
    pub acked: AtomicU64,
    /// Messages the gateway sent to the radios (`sendtext` on the JSON downlink topic).
    pub downlink: AtomicU64,
}

/// The device side: one MQTT connection publishing for every simulated device.
pub struct Devices {
    client: AsyncClient,
    pub stats: Arc<DeviceStats>,
    packet_id: u32,
}

impl Devices {
    /// Connects to the device broker.
    pub async fn connect(port: u16) -> Devices {
        let mut o = MqttOptions::new("demo-devices", "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(5));
        let (client, mut el) = AsyncClient::new(o, 256);
        let stats = Arc::new(DeviceStats::default());
        let s = stats.clone();
        let c = client.clone();
        tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        s.acked.fetch_add(1, Relaxed);
                    }
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = c.subscribe("msh/+/2/json/mqtt/", QoS::AtLeastOnce).await;
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) if p.payload.starts_with(b"{") => {
                        s.downlink.fetch_add(1, Relaxed);
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        });
        Devices {
            client,
            stats,
            packet_id: 0x4000_0000,
        }
    }

    async fn publish(&self, topic: &str, payload: String) {
        if self
            .client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .is_ok()
        {
            self.stats.published.fetch_add(1, Relaxed);
        }
    }

    /// One tick (`t` seconds into the run) of every simulated device.
    pub async fn tick(&mut self, t: u64, emergency: bool) {
        let now = Utc::now().timestamp();
        for (i, user) in ["anna", "ben", "chris"].iter().enumerate() {
            // Three crews driving circles of ~1 km around Berlin Mitte.
            let a = (t as f64 / 60.0 + i as f64 * 2.1) % std::f64::consts::TAU;
            let (lat, lon) = (52.52 + 0.009 * a.sin(), 13.405 + 0.015 * a.cos());
            let p = json!({"_type":"location","lat":lat,"lon":lon,"tst":now,"acc":8,"vel":36,
                           "batt":90 - (t / 10) as i64 - i as i64,"bs":1,"tid":&user[..2]});
            self.publish(&format!("owntracks/{user}/phone"), p.to_string())
                .await;
        }
        if t % 3 == 0 {
            for (n, from) in [0xa1b2_c3d4u32, 0x0bad_cafe].iter().enumerate() {
                self.packet_id += 1;
                let p = json!({"channel":0,"from":from,"id":self.packet_id,"type":"position",
                    "payload":{"latitude_i":525_100_000 + (t as i64) * 300 + n as i64 * 9000,
                               "longitude_i":133_900_000 + (t as i64) * 200,"altitude":40,"time":now},
                    "timestamp":now,"to":0xffff_ffffu32});
                // Both gateway radios hear the packet: the gateway must store it once.
                for gw in ["!0000aaaa", "!0000bbbb"] {
                    let mut p = p.clone();
                    p["sender"] = json!(gw);
                    self.publish(&format!("msh/EU/2/json/LongFast/{gw}"), p.to_string())
                        .await;
                }
            }
        }
        if t % 5 == 1 {
            self.packet_id += 1;
            let p = json!({"channel":0,"from":0xa1b2_c3d4u32,"id":self.packet_id,"type":"telemetry",
                "payload":{"battery_level":80 - (t / 5) as i64,"voltage":3.9,"channel_utilization":4.5,"air_util_tx":0.7,"uptime_seconds":3600 + t},
                "timestamp":now,"to":0xffff_ffffu32,"sender":"!0000aaaa"});
            self.publish("msh/EU/2/json/LongFast/!0000aaaa", p.to_string())
                .await;
        }
        if t % 7 == 2 {
            self.packet_id += 1;
            let p = json!({"channel":0,"from":0x0bad_cafeu32,"id":self.packet_id,"type":"text",
                "payload":{"text":format!("crew 2 at checkpoint {}", t / 7)},
                "timestamp":now,"to":0xffff_ffffu32,"sender":"!0000bbbb"});
            self.publish("msh/EU/2/json/LongFast/!0000bbbb", p.to_string())
                .await;
        }
        if t % 2 == 0 || emergency {
            let p = json!({"ts":now,"bat":70,"rssi":-71 - (t % 9) as i64,"ch":3,"sos":emergency,
                           "gps":{"lat":52.5163,"lon":13.3777}});
            self.publish("radios/r7/status", p.to_string()).await;
        }
    }
}
