//! Meshtastic channel encryption: AES-CTR with the channel key (PSK).
//!
//! From the firmware (`src/mesh/CryptoEngine.cpp`, `Channels.cpp` in meshtastic/firmware):
//! - AES-128 for a 16-byte key, AES-256 for a 32-byte key, in CTR mode whose 128-bit counter
//!   block starts as the nonce: packet id (u64, little-endian), sender node number (u32,
//!   little-endian), four zero bytes. The firmware counts in the last 4 bytes, big-endian
//!   (`setCounterSize(4)`), which is `ctr::Ctr32BE`.
//! - A 1-byte key is shorthand: 0 means no encryption, N ≥ 1 is the well-known default key with
//!   its last byte increased by N − 1 (`AQ==` = 1 = the default key itself).
//! - A packet's `channel` field on the air is a one-byte hash of the channel, the XOR of the
//!   name's bytes XOR the XOR of the (expanded) key's bytes; it picks which key to try first.

use aes::{Aes128, Aes256};
use base64::Engine as _;
use ctr::cipher::{KeyIvInit, StreamCipher};

/// The published default channel key (the expansion of `AQ==`).
pub const DEFAULT_KEY: [u8; 16] = [
    0xd4, 0xf1, 0xbb, 0x3a, 0x20, 0x29, 0x07, 0x59, 0xf0, 0xbc, 0xff, 0xab, 0xcf, 0x4e, 0x69, 0x01,
];

/// One channel key, expanded.
#[derive(Clone, PartialEq, Eq)]
pub struct ChannelKey {
    /// 0 (no encryption), 16 or 32 bytes.
    bytes: Vec<u8>,
}

impl std::fmt::Debug for ChannelKey {
    /// Keys are secrets: only their length is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChannelKey({} bytes)", self.bytes.len())
    }
}

impl ChannelKey {
    /// A key as a profile writes it: standard base64 of 1, 16 or 32 bytes.
    pub fn parse(b64: &str) -> Result<ChannelKey, String> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|e| format!("not base64: {e}"))?;
        match raw.len() {
            1 if raw[0] == 0 => Ok(ChannelKey { bytes: Vec::new() }),
            1 => {
                let mut k = DEFAULT_KEY.to_vec();
                k[15] = k[15].wrapping_add(raw[0] - 1);
                Ok(ChannelKey { bytes: k })
            }
            16 | 32 => Ok(ChannelKey { bytes: raw }),
            n => Err(format!(
                "a channel key is 1 byte (shorthand, e.g. \"AQ==\"), 16 or 32 bytes; this is {n}"
            )),
        }
    }

    /// The one-byte channel hash of channel `name` with this key.
    pub fn channel_hash(&self, name: &str) -> u8 {
        xor(name.as_bytes()) ^ xor(&self.bytes)
    }

    /// Decrypts (or, the same operation, encrypts) `buf` in place as packet `id` from `from`.
    /// A key of no bytes leaves it as is.
    pub fn apply(&self, from: u32, id: u32, buf: &mut [u8]) {
        let mut iv = [0u8; 16];
        iv[..8].copy_from_slice(&u64::from(id).to_le_bytes());
        iv[8..12].copy_from_slice(&from.to_le_bytes());
        match self.bytes.len() {
            16 => ctr::Ctr32BE::<Aes128>::new_from_slices(&self.bytes, &iv)
                .expect("16-byte key, 16-byte iv")
                .apply_keystream(buf),
            32 => ctr::Ctr32BE::<Aes256>::new_from_slices(&self.bytes, &iv)
                .expect("32-byte key, 16-byte iv")
                .apply_keystream(buf),
            _ => {}
        }
    }
}

fn xor(b: &[u8]) -> u8 {
    b.iter().fold(0, |a, x| a ^ x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorthand_expands_to_the_default_key() {
        assert_eq!(ChannelKey::parse("AQ==").unwrap().bytes, DEFAULT_KEY);
        let k2 = ChannelKey::parse("Ag==").unwrap().bytes;
        assert_eq!((k2[..15] == DEFAULT_KEY[..15], k2[15]), (true, 0x02));
        assert!(ChannelKey::parse("AA==").unwrap().bytes.is_empty());
    }

    #[test]
    fn bad_keys_are_explained() {
        assert!(ChannelKey::parse("AQI=").unwrap_err().contains("this is 2"));
        assert!(ChannelKey::parse("!!").unwrap_err().contains("not base64"));
    }

    #[test]
    fn the_default_channel_hash_is_8() {
        // LongFast with the default key is channel hash 8 (the "channel":8 of JSON uplinks).
        assert_eq!(
            ChannelKey::parse("AQ==").unwrap().channel_hash("LongFast"),
            8
        );
    }

    #[test]
    fn ctr_is_its_own_inverse() {
        let k = ChannelKey::parse("AQ==").unwrap();
        let mut b = b"hello mesh".to_vec();
        k.apply(0x1234_5678, 42, &mut b);
        assert_ne!(&b, b"hello mesh");
        k.apply(0x1234_5678, 42, &mut b);
        assert_eq!(&b, b"hello mesh");
    }
}
