//! Picks the decoder a profile names (MQTT side). Serial decoders are stateful per port and
//! live with their source.

use super::meshtastic_proto::ProtoDecoder;
use super::{json::JsonMapping, meshtastic, owntracks, DecodeError, Decoded};
use crate::config::{DecoderKind, Profile};
use chrono::{DateTime, Utc};

/// The decoder of an MQTT profile.
#[derive(Debug, Clone)]
pub enum MqttDecoder {
    Owntracks,
    Meshtastic,
    Json(Box<JsonMapping>),
    MeshtasticProto(Box<ProtoDecoder>),
}

impl MqttDecoder {
    /// The decoder `profile` names; an error for serial-only decoders.
    pub fn from_profile(profile: &Profile) -> anyhow::Result<MqttDecoder> {
        Ok(match profile.decoder {
            DecoderKind::Owntracks => MqttDecoder::Owntracks,
            DecoderKind::Meshtastic => MqttDecoder::Meshtastic,
            DecoderKind::Json => MqttDecoder::Json(Box::new(
                profile
                    .raw
                    .json
                    .as_ref()
                    .map(|j| j.get_ref().clone())
                    .unwrap_or_default(),
            )),
            DecoderKind::MeshtasticProto => {
                MqttDecoder::MeshtasticProto(Box::new(profile.meshtastic().decoder()?))
            }
            other => anyhow::bail!("decoder {other:?} does not take MQTT input"),
        })
    }

    /// Decodes one MQTT payload from device `dev` received at `now`.
    pub fn decode(
        &self,
        dev: &str,
        payload: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Decoded, DecodeError> {
        match self {
            MqttDecoder::Owntracks => owntracks::decode(dev, payload, now),
            MqttDecoder::Meshtastic => meshtastic::decode(dev, payload, now),
            MqttDecoder::Json(m) => super::json::decode(m, dev, payload, now),
            MqttDecoder::MeshtasticProto(d) => d.decode(dev, payload, now),
        }
    }
}
