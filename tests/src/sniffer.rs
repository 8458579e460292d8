//! A listener on a broker: subscribes QoS 1 to one filter and keeps every message, in order
//! (what the gateway sends to devices, SPEC §8).

use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use anyhow::anyhow;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

use crate::parse_mqtt_url;
use crate::rt::RuntimeThread;

/// Messages seen on a filter; disconnects on drop.
pub struct Sniffer {
    seen: Arc<Mutex<Vec<(String, String)>>>,
    _client: AsyncClient,
    _rt: RuntimeThread,
}

impl Sniffer {
    /// Connects to `url` and subscribes to `filter`; returns once subscribed.
    pub fn start(url: &str, client_id: &str, filter: &str) -> anyhow::Result<Self> {
        let (host, port) = parse_mqtt_url(url)?;
        let mut opts = MqttOptions::new(client_id, host, port);
        opts.set_keep_alive(Duration::from_secs(10));
        let (client, mut el) = AsyncClient::new(opts, 100);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let rt = RuntimeThread::start("sniffer")?;
        let (ready_tx, ready_rx) = mpsc::channel();
        let (c, s, f) = (client.clone(), seen.clone(), filter.to_string());
        rt.handle().spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = c.subscribe(&f, QoS::AtLeastOnce).await;
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = ready_tx.send(());
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let text = String::from_utf8_lossy(&p.payload).into_owned();
                        s.lock()
                            .expect("sniffer lock")
                            .push((p.topic.clone(), text));
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| anyhow!("sniffer did not subscribe to {filter} on {url} within 10 s"))?;
        Ok(Self {
            seen,
            _client: client,
            _rt: rt,
        })
    }

    /// Every (topic, payload) so far.
    pub fn seen(&self) -> Vec<(String, String)> {
        self.seen.lock().expect("sniffer lock").clone()
    }

    /// Payloads so far.
    pub fn payloads(&self) -> Vec<String> {
        self.seen().into_iter().map(|(_, p)| p).collect()
    }
}
