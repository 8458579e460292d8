//! Picks the decoder a profile names (MQTT side). Serial decoders are stateful per port and
//! live with their source.

use super::{json::JsonMapping, meshtastic, owntracks, DecodeError, Decoded};
use crate::config::{DecoderKind, Profile};
use anyhow::Context as _;
use chrono::{DateTime, Utc};

/// The decoder of an MQTT profile.
#[derive(Debug, Clone)]
pub enum MqttDecoder {
    Owntracks(Box<owntracks::Owntracks>),
    Meshtastic,
    Json(Box<JsonMapping>),
}

impl MqttDecoder {
    /// The decoder `profile` names; an error for serial-only decoders.
    pub fn from_profile(profile: &Profile) -> anyhow::Result<MqttDecoder> {
        Ok(match profile.decoder {
            DecoderKind::Owntracks => MqttDecoder::Owntracks(Box::new(owntracks_of(profile)?)),
            DecoderKind::Meshtastic => MqttDecoder::Meshtastic,
            DecoderKind::Json => MqttDecoder::Json(Box::new(
                profile
                    .raw
                    .json
                    .as_ref()
                    .map(|j| j.get_ref().clone())
                    .unwrap_or_default(),
            )),
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
            MqttDecoder::Owntracks(o) => o.decode(dev, payload, now),
            MqttDecoder::Meshtastic => meshtastic::decode(dev, payload, now),
            MqttDecoder::Json(m) => super::json::decode(m, dev, payload, now),
        }
    }
}

/// The OwnTracks decoder of `profile`, with the secret from its `key_file` if it names one.
fn owntracks_of(profile: &Profile) -> anyhow::Result<owntracks::Owntracks> {
    let opts = profile.owntracks();
    let key = match profile.owntracks_key_path() {
        Some(path) => {
            let text = std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "profile {}: owntracks.key_file {}",
                    profile.name,
                    path.display()
                )
            })?;
            Some(owntracks::Key::from_file_text(&text))
        }
        None => None,
    };
    Ok(owntracks::Owntracks {
        key,
        transition_status: opts.transition_status,
    })
}
