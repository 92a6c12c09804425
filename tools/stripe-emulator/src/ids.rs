//! Random identifiers (`cus_` + 14 alphanumerics, like Stripe) and timestamps.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const ALPHANUMERIC: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const UPPER_ALPHANUMERIC: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// Unix seconds.
pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Fills `buf` from the OS; should that ever fail, from a time-seeded splitmix64 so
/// that the emulator keeps answering (identifiers only need to be unique here).
fn random_bytes(buf: &mut [u8]) {
    if getrandom::fill(buf).is_err() {
        fallback_bytes(buf);
    }
}

fn fallback_bytes(buf: &mut [u8]) {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut state = (nanos as u64) ^ COUNTER.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
    for chunk in buf.chunks_mut(8) {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let bytes = z.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
}

/// `len` characters drawn uniformly from `alphabet` (rejection sampling, no modulo bias).
fn random_string(len: usize, alphabet: &[u8]) -> String {
    let n = alphabet.len();
    // Largest multiple of n that fits in a byte.
    let limit = 256 - (256 % n);
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 32];
    while out.len() < len {
        random_bytes(&mut buf);
        for &b in &buf {
            if usize::from(b) < limit && out.len() < len {
                out.push(char::from(alphabet[usize::from(b) % n]));
            }
        }
    }
    out
}

/// `prefix_` + 14 random alphanumerics, e.g. `cus_NffrFeUfNV2Hib`.
pub(crate) fn object_id(prefix: &str) -> String {
    format!("{prefix}_{}", random_string(14, ALPHANUMERIC))
}

/// Stripe's customer invoice prefix: 8 upper-case alphanumerics.
pub(crate) fn invoice_prefix() -> String {
    random_string(8, UPPER_ALPHANUMERIC)
}

/// A `Request-Id` header value.
pub(crate) fn request_id() -> String {
    format!("req_{}", random_string(14, ALPHANUMERIC))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_prefix_and_fourteen_alphanumerics() {
        let id = object_id("cus");
        assert!(id.starts_with("cus_"), "{id}");
        let rest = &id[4..];
        assert_eq!(rest.len(), 14);
        assert!(rest.chars().all(|c| c.is_ascii_alphanumeric()), "{id}");
        assert_ne!(object_id("cus"), object_id("cus"));
        let prefix = invoice_prefix();
        assert_eq!(prefix.len(), 8);
        assert!(
            prefix
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        );
    }

    #[test]
    fn fallback_generator_varies_between_calls() {
        let mut a = [0u8; 13];
        let mut b = [0u8; 13];
        fallback_bytes(&mut a);
        fallback_bytes(&mut b);
        assert_ne!(a, b);
        assert!(a.iter().any(|&x| x != 0));
    }
}
