//! Small shared pieces: reconnect backoff, rate-limited logging, stable hashing, publishes
//! left from a failed MQTT connection.

pub mod backoff;
pub mod ratelimit;
pub mod stale;

/// FNV-1a 64 over `parts` (with a separator), a stable hash of an input for redelivery
/// detection. Hand-written: 6 lines, and std's hasher is not guaranteed stable across releases.
pub fn input_hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.iter().chain(std::iter::once(&0xffu8)) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}
