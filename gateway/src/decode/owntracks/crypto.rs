//! OwnTracks payload encryption (<https://owntracks.org/booklet/features/encrypt/>): libsodium
//! `crypto_secretbox` (XSalsa20-Poly1305), here RustCrypto's `crypto_secretbox`.
//!
//! - Key: the secret configured in the app, its UTF-8 bytes copied into 32 zero bytes (the
//!   booklet: "a string of up to 32 characters … which the apps pad with binary zeroes"; a
//!   longer secret is cut at 32 bytes, as the apps' fixed-size key buffer does).
//! - Payload: `{"_type":"encrypted","data":"<base64>"}`, `data` being the 24-byte nonce followed
//!   by the ciphertext (with its 16-byte tag), as `crypto_secretbox_easy` writes it.
//!
//! A wrong key, a damaged box and a payload the profile has no key for all fail as
//! `decrypt_failed`; the caller counts and drops the message.

use base64::Engine as _;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::XSalsa20Poly1305;
use serde_json::{Map, Value};

use crate::decode::json::read;
use crate::decode::DecodeError;

const NONCE_BYTES: usize = 24;
const TAG_BYTES: usize = 16;

/// A 32-byte secretbox key. `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(pub(super) [u8; 32]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

impl Key {
    /// The key the apps derive from the secret typed into their settings.
    pub fn from_secret(secret: &str) -> Key {
        let mut k = [0u8; 32];
        let b = secret.as_bytes();
        let n = b.len().min(32);
        k[..n].copy_from_slice(&b[..n]);
        Key(k)
    }

    /// The key in a `key_file`: its text without the trailing newline an editor adds.
    pub fn from_file_text(text: &str) -> Key {
        Key::from_secret(text.trim_end_matches(['\r', '\n']))
    }
}

/// The plaintext of an `encrypted` message `obj`.
pub(crate) fn open(key: Option<&Key>, obj: &Map<String, Value>) -> Result<Vec<u8>, DecodeError> {
    let fail = |m: &str| DecodeError::DecryptFailed(m.to_string());
    let key =
        key.ok_or_else(|| fail("encrypted payload, but the profile has no owntracks.key_file"))?;
    let data = read::str_at(obj.get("data"), "data")?
        .ok_or_else(|| DecodeError::Missing("data".into()))?;
    // Line breaks inside the base64 (some encoders wrap at 76) are not part of it.
    let compact: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| fail(&format!("data is not base64: {e}")))?;
    if raw.len() < NONCE_BYTES + TAG_BYTES {
        return Err(fail("data is shorter than a nonce and a tag"));
    }
    let (nonce, boxed) = raw.split_at(NONCE_BYTES);
    XSalsa20Poly1305::new(&key.0.into())
        .decrypt(nonce.into(), boxed)
        .map_err(|_| fail("wrong key or damaged payload"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_the_secret_zero_padded_or_cut_to_32_bytes() {
        let k = Key::from_secret("abc");
        assert_eq!(&k.0[..4], b"abc\0");
        assert!(k.0[3..].iter().all(|b| *b == 0));
        let long = "x".repeat(40);
        assert_eq!(Key::from_secret(&long).0, [b'x'; 32]);
        assert_eq!(Key::from_file_text("abc\n"), k);
        assert_eq!(format!("{k:?}"), "Key(<redacted>)");
    }

    #[test]
    fn malformed_boxes_fail_as_decrypt_failed() {
        let k = Key::from_secret("s");
        for data in ["%%%", "AAAA", ""] {
            let obj = serde_json::json!({"_type": "encrypted", "data": data});
            let e = open(Some(&k), obj.as_object().unwrap()).unwrap_err();
            assert_eq!(e.reason(), "decrypt_failed", "{data:?}");
        }
        let obj = serde_json::json!({"_type": "encrypted", "data": "AAAA"});
        assert_eq!(
            open(None, obj.as_object().unwrap()).unwrap_err().reason(),
            "decrypt_failed"
        );
    }
}
