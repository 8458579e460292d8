//! Text to a mesh node through the radio, and what became of it (SPEC §8, `meshtastic-serial`),
//! sans-I/O: [`send_text`] builds the frame, [`on_routing`] reads a routing packet as an ack or
//! a NAK, and [`Pending`] matches those to what was sent, with a timeout.
//!
//! Acknowledgement, as the firmware does it (`ReliableRouter`): a packet sent with `want_ack`
//! is answered by a `ROUTING_APP` packet whose `Data.request_id` is the sent packet id and
//! whose `Routing.error_reason` is `NONE` for success. For a direct message the success ack
//! comes from the destination. The local radio also reports `NONE` itself when it merely heard
//! a neighbour rebroadcast the packet (an "implicit ack"): that is proof of a hop, not of
//! delivery, so for a direct message it is not `delivered`; for a broadcast it is the only ack
//! there is, and counts. A non-`NONE` reason (`MAX_RETRANSMIT`, `NO_ROUTE`, …) is `failed`.

use crate::decode::meshtastic_proto::messages::{
    self as pb, port, Data, MeshPacket, Payload, Routing, RoutingVariant, ToRadio, ToRadioVariant,
};
use prost::Message as _;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The broadcast node number (`to = "*"`).
pub const BROADCAST: u32 = 0xffff_ffff;
/// The largest text payload a Meshtastic packet carries (`DATA_PAYLOAD_LEN`).
pub const MAX_TEXT_BYTES: usize = 233;
/// Hops a text may travel: the firmware's default `lora.hop_limit`.
pub const HOP_LIMIT: u32 = 3;

/// What became of a sent text, as a receipt state (SPEC §8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The destination (or, for a broadcast, the mesh) acknowledged it.
    Delivered,
    /// The mesh gave up, with its reason (`MAX_RETRANSMIT`, `NO_ROUTE`, …).
    Failed(String),
    /// Handed to the radio; no acknowledgement within the timeout.
    Sent,
    /// Never handed to the radio (its port closed first); the caller may send it again.
    Unsent,
}

/// Why a text was not sent at all.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SendError {
    #[error("text of {0} bytes is over the {MAX_TEXT_BYTES}-byte Meshtastic limit")]
    TooLong(usize),
    #[error("{0:?} is not a node id (expected \"!%08x\", a node number or \"*\")")]
    BadNode(String),
}

impl SendError {
    /// Receipt reason (`failed` with `too_long`, as the JSON path).
    pub fn reason(&self) -> &'static str {
        match self {
            SendError::TooLong(_) => "too_long",
            SendError::BadNode(_) => "bad_node",
        }
    }
}

/// A device id as a node number: `!a1b2c3d4`, a decimal node number, or `*` (broadcast).
pub fn parse_node(dev: &str) -> Result<u32, SendError> {
    let bad = || SendError::BadNode(dev.to_string());
    match dev {
        "*" => Ok(BROADCAST),
        d if d.starts_with('!') && d.len() == 9 => {
            u32::from_str_radix(&d[1..], 16).map_err(|_| bad())
        }
        d => d.parse().map_err(|_| bad()),
    }
}

/// The framed `ToRadio` carrying `text` to node `dest` as packet `packet_id` (non-zero; the
/// caller picks it, so it can match the ack), on the primary channel, with `want_ack`.
pub fn send_text(dest: u32, text: &str, packet_id: u32) -> Result<Vec<u8>, SendError> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(SendError::TooLong(text.len()));
    }
    let packet = MeshPacket {
        to: dest,
        id: packet_id,
        want_ack: true,
        hop_limit: HOP_LIMIT,
        payload: Some(Payload::Decoded(Data {
            portnum: port::TEXT_MESSAGE,
            payload: text.as_bytes().to_vec(),
            ..Default::default()
        })),
        ..Default::default()
    };
    let msg = ToRadio {
        variant: Some(ToRadioVariant::Packet(packet)),
    };
    Ok(super::frame_to_radio(&msg))
}

/// A routing answer to packet `request_id`, from node `from`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoutingAck {
    pub request_id: u32,
    pub from: u32,
    /// `None` for `NONE` (success), else the reason's name.
    pub error: Option<String>,
}

/// `p` read as a routing ack or NAK, if it is one.
pub fn on_routing(p: &MeshPacket) -> Option<RoutingAck> {
    let Some(Payload::Decoded(d)) = &p.payload else {
        return None;
    };
    if d.portnum != port::ROUTING || d.request_id == 0 {
        return None;
    }
    let r = Routing::decode(d.payload.as_slice()).ok()?;
    let error = match r.variant {
        Some(RoutingVariant::ErrorReason(0)) | None => None,
        Some(RoutingVariant::ErrorReason(e)) => Some(pb::routing_error_name(e)),
    };
    Some(RoutingAck {
        request_id: d.request_id,
        from: p.from,
        error,
    })
}

/// Texts sent and awaiting their ack.
#[derive(Debug, Default)]
pub struct Pending {
    /// packet id → (destination, deadline)
    sent: HashMap<u32, (u32, Instant)>,
}

impl Pending {
    /// Records packet `id` to `dest`, sent at `now`, to be answered within `timeout`.
    pub fn sent(&mut self, id: u32, dest: u32, now: Instant, timeout: Duration) {
        self.sent.insert(id, (dest, now + timeout));
    }

    /// How many texts await an ack.
    pub fn len(&self) -> usize {
        self.sent.len()
    }

    /// True when nothing awaits an ack.
    pub fn is_empty(&self) -> bool {
        self.sent.is_empty()
    }

    /// The outcome `ack` settles, if it settles one (see the module docs on implicit acks).
    pub fn on_ack(&mut self, ack: &RoutingAck) -> Option<(u32, Outcome)> {
        let (dest, _) = *self.sent.get(&ack.request_id)?;
        let outcome = match &ack.error {
            Some(reason) => Outcome::Failed(reason.clone()),
            None if dest == BROADCAST || ack.from == dest => Outcome::Delivered,
            // An implicit ack (our radio heard a relay): keep waiting for the real one.
            None => return None,
        };
        self.sent.remove(&ack.request_id);
        Some((ack.request_id, outcome))
    }

    /// Texts whose deadline has passed at `now`: `sent` only.
    pub fn expired(&mut self, now: Instant) -> Vec<(u32, Outcome)> {
        let gone: Vec<u32> = self
            .sent
            .iter()
            .filter(|(_, (_, d))| *d <= now)
            .map(|(id, _)| *id)
            .collect();
        gone.into_iter()
            .map(|id| {
                self.sent.remove(&id);
                (id, Outcome::Sent)
            })
            .collect()
    }

    /// The earliest deadline, to sleep until.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.sent.values().map(|(_, d)| *d).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::meshtastic_proto::messages::FromRadio;

    fn routing(from: u32, request_id: u32, error: i32) -> MeshPacket {
        let r = Routing {
            variant: Some(RoutingVariant::ErrorReason(error)),
        };
        MeshPacket {
            from,
            payload: Some(Payload::Decoded(Data {
                portnum: port::ROUTING,
                payload: r.encode_to_vec(),
                request_id,
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    #[test]
    fn send_text_is_a_framed_toradio_with_want_ack() {
        let f = send_text(0xdeadbeef, "Evacuate sector 4", 77).unwrap();
        assert_eq!(&f[..2], &[0x94, 0xc3]);
        assert_eq!(usize::from(u16::from_be_bytes([f[2], f[3]])), f.len() - 4);
        let m = ToRadio::decode(&f[4..]).unwrap();
        let Some(ToRadioVariant::Packet(p)) = m.variant else {
            panic!()
        };
        assert_eq!((p.to, p.id, p.want_ack), (0xdeadbeef, 77, true));
        let Some(Payload::Decoded(d)) = p.payload else {
            panic!()
        };
        assert_eq!(
            (d.portnum, d.payload.as_slice()),
            (1, b"Evacuate sector 4".as_slice())
        );
        assert_eq!(
            send_text(1, &"x".repeat(234), 1),
            Err(SendError::TooLong(234))
        );
        let _ = FromRadio::default();
    }

    #[test]
    fn acks_naks_implicit_acks_and_timeouts() {
        let t0 = Instant::now();
        let mut p = Pending::default();
        for (id, dest) in [(1, 0xb), (2, 0xb), (3, BROADCAST), (4, 0xb)] {
            p.sent(id, dest, t0, Duration::from_secs(30));
        }
        let ack = |r| on_routing(&r).unwrap();
        assert_eq!(
            p.on_ack(&ack(routing(0xa, 1, 0))),
            None,
            "implicit ack is no delivery"
        );
        assert_eq!(
            p.on_ack(&ack(routing(0xb, 1, 0))),
            Some((1, Outcome::Delivered))
        );
        assert_eq!(
            p.on_ack(&ack(routing(0xa, 2, 5))),
            Some((2, Outcome::Failed("MAX_RETRANSMIT".into())))
        );
        assert_eq!(
            p.on_ack(&ack(routing(0xa, 3, 0))),
            Some((3, Outcome::Delivered))
        );
        assert_eq!(p.on_ack(&ack(routing(0xb, 99, 0))), None, "not ours");
        assert_eq!(p.expired(t0 + Duration::from_secs(29)), []);
        assert_eq!(
            p.expired(t0 + Duration::from_secs(30)),
            [(4, Outcome::Sent)]
        );
        assert!(p.is_empty());
        assert_eq!(ack(routing(0xa, 9, 1)).error.as_deref(), Some("NO_ROUTE"));
    }

    #[test]
    fn node_ids() {
        assert_eq!(parse_node("!deadbeef"), Ok(0xdeadbeef));
        assert_eq!(parse_node("*"), Ok(BROADCAST));
        assert_eq!(parse_node("42"), Ok(42));
        assert_eq!(parse_node("gps0").unwrap_err().reason(), "bad_node");
    }
}
