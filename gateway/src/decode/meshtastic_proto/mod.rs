//! Meshtastic protobuf MQTT uplink (SPEC §11): what firmware 2.8 and later publishes on
//! `msh/<region>/2/e/<channel>/<gateway node>` — a `ServiceEnvelope` holding the `MeshPacket` as
//! the relaying radio heard it, usually still encrypted with the channel key.
//!
//! The packet is decrypted with the profile's channel keys ([`crypto`]), its `Data` payload
//! mapped to the same events as the JSON decoder ([`packet`]), and the same dedup key as
//! [`crate::decode::meshtastic`] (`mesh:<from>:<id>`) is set, so one packet relayed by several
//! radios — or heard over JSON and protobuf both — is stored once. The device is the
//! originating node (`!%08x`), not the relaying radio of the topic.
//!
//! Drops, by reason: `not_protobuf` (not a `ServiceEnvelope`, or a payload that is not the
//! message its port says), `wrong_key` (encrypted for a channel none of the keys is for),
//! `undecryptable` (a key matched the channel hash but the packet does not decrypt to a `Data`,
//! e.g. a PKI-encrypted direct message), `missing_field` (an envelope without a packet).
//!
//! Message definitions: [`messages`], written for this project from the published field
//! numbers (no GPL code copied).

pub mod crypto;
pub mod messages;
pub mod packet;
#[cfg(test)]
mod tests;

use super::{DecodeError, Decoded};
use crate::decode::json::read::MAX_PAYLOAD_BYTES;
use chrono::{DateTime, Utc};
use crypto::ChannelKey;
use messages::{Data, MeshPacket, Payload, ServiceEnvelope};
use prost::Message as _;

/// The key list of a profile without `keys`: the default channel only.
pub const DEFAULT_KEYS: &[&str] = &["AQ=="];

/// The `meshtastic-proto` decoder: the channel keys it may decrypt with.
#[derive(Debug, Clone)]
pub struct ProtoDecoder {
    keys: Vec<ChannelKey>,
}

impl ProtoDecoder {
    /// A decoder with `keys` (base64, as in the profile); the first bad key is the error.
    pub fn new<S: AsRef<str>>(keys: &[S]) -> Result<ProtoDecoder, String> {
        let keys = keys
            .iter()
            .map(|k| ChannelKey::parse(k.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(ProtoDecoder { keys })
    }

    /// Decodes one `ServiceEnvelope` received at `now`. `_dev` (the relaying radio of the
    /// topic) is ignored: events belong to the originating node.
    pub fn decode(
        &self,
        _dev: &str,
        payload: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Decoded, DecodeError> {
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(DecodeError::TooLarge(payload.len(), MAX_PAYLOAD_BYTES));
        }
        let env = ServiceEnvelope::decode(payload)
            .map_err(|e| DecodeError::NotProtobuf(format!("ServiceEnvelope: {e}")))?;
        let p = env
            .packet
            .as_ref()
            .ok_or_else(|| DecodeError::Missing("packet".into()))?;
        self.decode_packet(p, &env.channel_id, now)
    }

    /// Decodes one mesh packet, decrypting it first if need be (`channel` names its channel
    /// for the hash; may be empty).
    pub fn decode_packet(
        &self,
        p: &MeshPacket,
        channel: &str,
        now: DateTime<Utc>,
    ) -> Result<Decoded, DecodeError> {
        // As in the JSON decoder: id 0 is an absent id (proto3 default), which cannot be
        // matched to its relays, so such a packet is not deduplicated.
        let dedup_key = (p.id != 0).then(|| super::meshtastic::dedup_key(p.from, p.id));
        let data = match &p.payload {
            Some(Payload::Decoded(d)) => d.clone(),
            Some(Payload::Encrypted(c)) => self.decrypt(p, c, channel)?,
            None => return Err(DecodeError::Missing("packet.payload".into())),
        };
        let events = packet::events(p, &data, now)?;
        Ok(Decoded {
            events,
            dedup_key,
            ..Default::default()
        })
    }

    /// Tries the keys whose channel hash matches the packet first, then the rest (the channel
    /// name in the envelope may differ from the one the hash was made with). A key is right
    /// when the plaintext is a `Data` with a port — the firmware's own test.
    fn decrypt(&self, p: &MeshPacket, cipher: &[u8], channel: &str) -> Result<Data, DecodeError> {
        let matching = |k: &&ChannelKey| u32::from(k.channel_hash(channel)) == p.channel;
        let (hashed, others): (Vec<&ChannelKey>, Vec<&ChannelKey>) =
            self.keys.iter().partition(matching);
        for key in hashed.iter().chain(&others) {
            let mut buf = cipher.to_vec();
            key.apply(p.from, p.id, &mut buf);
            if let Ok(d) = Data::decode(buf.as_slice()) {
                if d.portnum != 0 {
                    return Ok(d);
                }
            }
        }
        let which = match channel {
            "" => format!("channel hash {}", p.channel),
            c => format!("channel {c:?} (hash {})", p.channel),
        };
        Err(if hashed.is_empty() {
            DecodeError::WrongKey(format!("no configured key is for {which}"))
        } else {
            DecodeError::Undecryptable(format!(
                "packet {} from {} does not decrypt with the key of {which}",
                p.id,
                packet::node_id(p.from)
            ))
        })
    }
}
