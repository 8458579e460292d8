//! The Meshtastic serial API (SPEC §11, profile `meshtastic-serial`), sans-I/O: a radio on USB
//! speaking framed protobufs ([`framer`]). The serial task (`ingest::meshtastic_serial`) owns
//! the port and feeds [`Radio`] what it reads; `outpost decode` feeds it a capture.
//!
//! Session, as the official clients run it: wake the radio's API with a burst of `0xC3`, send
//! `ToRadio.want_config_id` with a fresh id, and read the radio's answer — `my_info` (its own
//! node number), one `node_info` per known node (their names are kept, [`Radio::name`]), config
//! and channels (skipped) — until `config_complete_id` echoes the id. Then every `packet` it
//! hears is decoded as the protobuf MQTT uplink does ([`crate::decode::meshtastic_proto`]:
//! same events, device ids and dedup keys); routing packets settle sent texts ([`downlink`]).
//! A `ToRadio.heartbeat` every few minutes keeps the API session from timing out; `rebooted`
//! starts the handshake over.

pub mod downlink;
pub mod framer;
#[cfg(test)]
mod tests;

use crate::decode::meshtastic_proto::messages::{
    FromRadio, FromRadioVariant, Heartbeat, ToRadio, ToRadioVariant,
};
use crate::decode::meshtastic_proto::{packet, ProtoDecoder};
use crate::decode::{DecodeError, Decoded};
use chrono::{DateTime, Utc};
use downlink::RoutingAck;
use prost::Message as _;
use std::collections::HashMap;

/// Sent before the handshake: wakes a radio whose API is asleep (the official clients send 32).
pub const WAKE: [u8; 32] = [framer::START2; 32];

/// `msg` as a framed `ToRadio`. Every `ToRadio` this gateway builds is far below the limit.
pub fn frame_to_radio(msg: &ToRadio) -> Vec<u8> {
    framer::frame(&msg.encode_to_vec()).expect("ToRadio messages built here are under 512 bytes")
}

/// The framed `want_config_id` request.
pub fn want_config(id: u32) -> Vec<u8> {
    frame_to_radio(&ToRadio {
        variant: Some(ToRadioVariant::WantConfigId(id)),
    })
}

/// The framed heartbeat.
pub fn heartbeat(nonce: u32) -> Vec<u8> {
    frame_to_radio(&ToRadio {
        variant: Some(ToRadioVariant::Heartbeat(Heartbeat { nonce })),
    })
}

/// What one `FromRadio` frame meant.
#[derive(Debug, PartialEq)]
pub enum Heard {
    /// A mesh packet's events (possibly none, e.g. a port that carries nothing for us).
    Packet(Decoded),
    /// A routing ack or NAK for a packet we sent.
    Ack(RoutingAck),
    /// The handshake finished: the radio is ready.
    Configured,
    /// The radio rebooted: the handshake must be done again.
    Rebooted,
    /// Session bookkeeping (node info, config, channels …) or something not for us.
    Other,
}

/// One radio's session state.
#[derive(Debug)]
pub struct Radio {
    decoder: ProtoDecoder,
    config_id: u32,
    my_node: Option<u32>,
    configured: bool,
    /// Node number → display name, from the handshake's node database and NODEINFO packets.
    names: HashMap<u32, String>,
}

impl Radio {
    /// A session that will ask for config `config_id` (pick a fresh non-zero one per open) and
    /// decrypt what the radio could not with `decoder`'s keys.
    pub fn new(decoder: ProtoDecoder, config_id: u32) -> Radio {
        Radio {
            decoder,
            config_id,
            my_node: None,
            configured: false,
            names: HashMap::new(),
        }
    }

    /// The bytes that open the session: wake-up, then `want_config_id`.
    pub fn start(&mut self) -> Vec<u8> {
        self.configured = false;
        let mut v = WAKE.to_vec();
        v.extend(want_config(self.config_id));
        v
    }

    /// The radio's own node number, once it said.
    pub fn my_node(&self) -> Option<u32> {
        self.my_node
    }

    /// Whether the handshake has completed.
    pub fn configured(&self) -> bool {
        self.configured
    }

    /// The name node `num` goes by (long name, else short name), if the radio told us. This is
    /// where a serial radio's node names are kept for later use (e.g. a callsign).
    pub fn name(&self, num: u32) -> Option<&str> {
        self.names.get(&num).map(String::as_str)
    }

    /// One frame's payload, received at `now`.
    pub fn on_frame(&mut self, frame: &[u8], now: DateTime<Utc>) -> Result<Heard, DecodeError> {
        let msg = FromRadio::decode(frame)
            .map_err(|e| DecodeError::NotProtobuf(format!("FromRadio: {e}")))?;
        Ok(match msg.variant {
            Some(FromRadioVariant::MyInfo(i)) => {
                self.my_node = Some(i.my_node_num);
                Heard::Other
            }
            Some(FromRadioVariant::NodeInfo(n)) => {
                if let Some(name) = n.user.as_ref().and_then(packet::display_name) {
                    self.names.insert(n.num, name);
                }
                Heard::Other
            }
            Some(FromRadioVariant::ConfigCompleteId(id)) if id == self.config_id => {
                self.configured = true;
                Heard::Configured
            }
            Some(FromRadioVariant::Rebooted(_)) => {
                self.configured = false;
                Heard::Rebooted
            }
            Some(FromRadioVariant::Packet(p)) => match downlink::on_routing(&p) {
                Some(ack) => Heard::Ack(ack),
                None => {
                    self.learn_name(&p);
                    Heard::Packet(self.decoder.decode_packet(&p, "", now)?)
                }
            },
            _ => Heard::Other,
        })
    }

    fn learn_name(&mut self, p: &crate::decode::meshtastic_proto::messages::MeshPacket) {
        use crate::decode::meshtastic_proto::messages::{port, Payload, User};
        if let Some(Payload::Decoded(d)) = &p.payload {
            if d.portnum == port::NODEINFO {
                if let Some(name) = User::decode(d.payload.as_slice())
                    .ok()
                    .as_ref()
                    .and_then(packet::display_name)
                {
                    self.names.insert(p.from, name);
                }
            }
        }
    }
}

/// Decodes a raw serial capture (`outpost decode -p meshtastic-serial`): every frame's events
/// and problems in order, numbered by frame; debug text is skipped.
pub fn decode_capture(
    decoder: ProtoDecoder,
    input: &[u8],
    now: DateTime<Utc>,
    out: &mut impl FnMut(usize, Result<Decoded, DecodeError>),
) -> framer::StreamStats {
    let mut radio = Radio::new(decoder, 0);
    let mut f = framer::StreamFramer::default();
    let mut n = 0;
    f.push(input, &mut |c| {
        if let framer::Chunk::Frame(b) = c {
            n += 1;
            match radio.on_frame(b, now) {
                Ok(Heard::Packet(d)) => out(n, Ok(d)),
                Ok(_) => {}
                Err(e) => out(n, Err(e)),
            }
        }
    });
    f.stats()
}
