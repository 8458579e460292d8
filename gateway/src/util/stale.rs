//! Publishes rumqttc read on a connection that then failed.
//!
//! rumqttc 0.25 reads packets in batches into `MqttState::events`. When a batch ends in a
//! connection error, `EventLoop::clean` leaves the publishes already read there, and the next
//! `poll` hands them out after the new connection's CONNACK, as if the new connection had sent
//! them. They were sent under the old connection's packet ids and never acknowledged: the broker
//! of a persistent session redelivers each of them under the same id. Taken as new, they
//! overtook inputs the broker redelivers before them (`tests/tests/burst_cut.rs`), and an
//! acknowledgement of one, sent on the new connection after its redelivered copy was
//! acknowledged, could fall on another message given that packet id since.

use rumqttc::{Event, EventLoop, Packet, Publish};
use std::collections::VecDeque;

/// Takes the incoming publishes still queued in `el` (call it when `poll` returned an error);
/// other queued events stay.
pub fn take_stale_publishes(el: &mut EventLoop) -> Vec<Publish> {
    let mut stale = Vec::new();
    let mut rest = VecDeque::new();
    for e in std::mem::take(&mut el.state.events) {
        match e {
            Event::Incoming(Packet::Publish(p)) => stale.push(p),
            other => rest.push_back(other),
        }
    }
    el.state.events = rest;
    stale
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::{MqttOptions, PubAck, QoS};

    #[test]
    fn takes_queued_publishes_in_order_and_leaves_the_rest() {
        let (_client, mut el) = rumqttc::AsyncClient::new(MqttOptions::new("t", "127.0.0.1", 1), 4);
        let publish = |n: u16| {
            let mut p = Publish::new("owntracks/u/d", QoS::AtLeastOnce, vec![n as u8]);
            p.pkid = n;
            Event::Incoming(Packet::Publish(p))
        };
        el.state.events.extend([
            publish(7),
            Event::Incoming(Packet::PubAck(PubAck::new(3))),
            publish(8),
        ]);
        let stale = take_stale_publishes(&mut el);
        assert_eq!(stale.iter().map(|p| p.pkid).collect::<Vec<_>>(), [7, 8]);
        assert_eq!(el.state.events.len(), 1);
        assert!(take_stale_publishes(&mut el).is_empty());
    }
}
