//! A field device on the device-side broker: publishes QoS 1 and waits for the broker's PUBACK.
//!
//! "Returns once PUBACKed" is what makes the gateway tests exact: the broker owns the message
//! from then on, so anything the gateway later misses is the gateway's loss.

use std::collections::{HashMap, VecDeque};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, Context};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS};

use crate::parse_mqtt_url;
use crate::rt::RuntimeThread;

/// How long one publish may wait for its PUBACK.
const ACK_TIMEOUT: Duration = Duration::from_secs(30);

type Done = mpsc::Sender<()>;

/// Acks owed: publishes handed to rumqttc but not yet given a packet id, and those awaiting
/// PUBACK by packet id. rumqttc assigns ids in request order, so the queue maps onto them.
#[derive(Default)]
struct Pending {
    unassigned: VecDeque<Done>,
    by_pkid: HashMap<u16, Done>,
}

/// A device client (clean session, its own client id); disconnects on drop.
pub struct Device {
    client: AsyncClient,
    pending: Arc<Mutex<Pending>>,
    client_id: String,
    // Last field: dropped last, which stops the event loop task.
    rt: RuntimeThread,
}

impl Device {
    /// Connects to `url` (`mqtt://host:port`) as `client_id`; returns once connected.
    pub fn connect(url: &str, client_id: &str) -> anyhow::Result<Self> {
        let (host, port) = parse_mqtt_url(url)?;
        let mut opts = MqttOptions::new(client_id, host, port);
        opts.set_clean_session(true)
            .set_keep_alive(Duration::from_secs(10))
            .set_max_packet_size(64 << 20, 64 << 20)
            .set_inflight(100);
        let (client, eventloop) = AsyncClient::new(opts, 10_000);
        let pending = Arc::new(Mutex::new(Pending::default()));
        let rt = RuntimeThread::start("device")?;
        let (ready_tx, ready_rx) = mpsc::channel();
        rt.handle().spawn(run(eventloop, pending.clone(), ready_tx));
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| anyhow!("device {client_id} did not connect to {url} within 10 s"))?;
        Ok(Self {
            client,
            pending,
            client_id: client_id.to_string(),
            rt,
        })
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Publishes QoS 1 and returns once the broker PUBACKed it.
    pub fn publish_qos1(&self, topic: &str, payload: impl Into<Vec<u8>>) -> anyhow::Result<()> {
        self.publish_many_qos1([(topic.to_string(), payload.into())])
    }

    /// Publishes retained QoS 1 and returns once PUBACKed.
    pub fn publish_retained(&self, topic: &str, payload: impl Into<Vec<u8>>) -> anyhow::Result<()> {
        let waits = self.send(vec![(topic.to_string(), payload.into(), true)])?;
        wait_acks(waits)
    }

    /// Publishes all messages QoS 1, pipelined (up to 100 in flight), in order; returns once
    /// every one was PUBACKed.
    pub fn publish_many_qos1<T, P>(
        &self,
        messages: impl IntoIterator<Item = (T, P)>,
    ) -> anyhow::Result<()>
    where
        T: Into<String>,
        P: Into<Vec<u8>>,
    {
        let messages = messages
            .into_iter()
            .map(|(t, p)| (t.into(), p.into(), false))
            .collect();
        wait_acks(self.send(messages)?)
    }

    /// Publishes a capture in the `outpost decode` MQTT format: one message a line,
    /// `TOPIC PAYLOAD`, split at the first space; blank lines skipped. Returns the count.
    pub fn publish_capture(&self, capture: &str) -> anyhow::Result<usize> {
        let messages: Vec<(String, String)> = capture
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let (t, p) = l.split_once(' ').unwrap_or((l, ""));
                (t.to_string(), p.to_string())
            })
            .collect();
        let n = messages.len();
        self.publish_many_qos1(messages)?;
        Ok(n)
    }

    /// Queues the publishes in order; each receiver fires on its PUBACK.
    fn send(&self, messages: Vec<(String, Vec<u8>, bool)>) -> anyhow::Result<Vec<Waiter>> {
        let client = self.client.clone();
        let pending = self.pending.clone();
        // Waiter and request are queued together on the runtime, so the order of `unassigned`
        // is the order in which rumqttc sees the requests (and assigns packet ids).
        let queue_all = async move {
            let mut waits = Vec::with_capacity(messages.len());
            for (topic, payload, retain) in messages {
                let (tx, rx) = mpsc::channel();
                pending
                    .lock()
                    .expect("pending lock")
                    .unassigned
                    .push_back(tx);
                client
                    .publish(topic, QoS::AtLeastOnce, retain, payload)
                    .await?;
                waits.push(rx);
            }
            Ok::<_, rumqttc::ClientError>(waits)
        };
        // Generous: a full request queue drains only as fast as the broker acks.
        let waits = self
            .rt
            .call(Duration::from_secs(300), queue_all)?
            .context("device publish")?;
        Ok(waits)
    }
}

type Waiter = mpsc::Receiver<()>;

fn wait_acks(waits: Vec<Waiter>) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + ACK_TIMEOUT;
    for (i, rx) in waits.iter().enumerate() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        rx.recv_timeout(left)
            .map_err(|_| anyhow!("publish #{i} not PUBACKed within {ACK_TIMEOUT:?}"))?;
    }
    Ok(())
}

/// The device's event loop: matches outgoing packet ids to waiters and fires them on PUBACK.
async fn run(mut eventloop: EventLoop, pending: Arc<Mutex<Pending>>, ready: mpsc::Sender<()>) {
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                let _ = ready.send(());
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) if pkid != 0 => {
                let mut p = pending.lock().expect("pending lock");
                // A retransmission after reconnect reuses its pkid, which is already mapped.
                if !p.by_pkid.contains_key(&pkid) {
                    if let Some(done) = p.unassigned.pop_front() {
                        p.by_pkid.insert(pkid, done);
                    }
                }
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                let done = pending
                    .lock()
                    .expect("pending lock")
                    .by_pkid
                    .remove(&ack.pkid);
                if let Some(done) = done {
                    let _ = done.send(());
                }
            }
            Ok(_) => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}
