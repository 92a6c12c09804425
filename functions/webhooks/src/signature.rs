//! Stripe's webhook signature: `Stripe-Signature: t=<unix time>,v1=<hex>[,v1=<hex>…]`, where
//! each `v1` is HMAC-SHA256 over `"{t}.{raw body}"` keyed with the endpoint's signing secret
//! (the whole `whsec_…` string). Any one matching `v1` is enough (Stripe sends several while
//! a secret is being rolled); `v0` and unknown schemes are ignored. HMAC and its
//! constant-time comparison are aws-lc-rs's.

use aws_lc_rs::hmac;
use billstack::error::{ApiError, ErrorCode};

/// How far the signed time may be from now, either way (Stripe's libraries use 300 s).
pub const TOLERANCE_SECS: i64 = 300;

fn refused(message: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidSignature, message).with_param("Stripe-Signature")
}

/// Checks `header` for `body` with `secret` at `now`; a 400 naming what is wrong otherwise.
pub fn verify(header: Option<&str>, body: &[u8], secret: &str, now: i64) -> Result<(), ApiError> {
    let header = header
        .filter(|h| !h.trim().is_empty())
        .ok_or_else(|| refused("The Stripe-Signature header is missing"))?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("v1", value)) => signatures.push(value),
            _ => {}
        }
    }
    let timestamp =
        timestamp.ok_or_else(|| refused("The Stripe-Signature header has no timestamp (t=)"))?;
    if signatures.is_empty() {
        return Err(refused("The Stripe-Signature header has no v1 signature"));
    }
    if (now - timestamp).abs() > TOLERANCE_SECS {
        return Err(refused(
            "The Stripe-Signature timestamp is outside the 5-minute tolerance",
        ));
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut signed = Vec::with_capacity(body.len() + 12);
    signed.extend_from_slice(timestamp.to_string().as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    let matches = signatures.iter().any(|candidate| {
        hex::decode(candidate).is_ok_and(|tag| hmac::verify(&key, &signed, &tag).is_ok())
    });
    if matches {
        Ok(())
    } else {
        Err(refused(
            "No signature in the Stripe-Signature header matches this endpoint's signing secret",
        ))
    }
}

/// The header Stripe would send for `body` signed with `secret` at `timestamp`.
pub fn sign(body: &[u8], secret: &str, timestamp: i64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut signed = timestamp.to_string().into_bytes();
    signed.push(b'.');
    signed.extend_from_slice(body);
    let tag = hmac::sign(&key, &signed);
    format!("t={timestamp},v1={}", hex::encode(tag.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    const SECRET: &str = "whsec_test_secret_0123456789abcdef";
    const BODY: &[u8] = br#"{"id":"evt_1","type":"customer.updated"}"#;

    #[test]
    fn a_signature_stripe_would_send_verifies() {
        let header = sign(BODY, SECRET, 1_000);
        assert!(verify(Some(&header), BODY, SECRET, 1_000).is_ok());
        assert!(verify(Some(&header), BODY, SECRET, 1_000 + TOLERANCE_SECS).is_ok());
        // Several v1 (a secret being rolled) and a v0: one match is enough.
        let other = sign(BODY, "whsec_another_secret_000000000000", 1_000);
        let v1_other = other.split(",v1=").nth(1).unwrap();
        let v1_ours = header.split(",v1=").nth(1).unwrap();
        let rolled = format!("t=1000,v1={v1_other},v0=abc,v1={v1_ours}");
        assert!(verify(Some(&rolled), BODY, SECRET, 1_010).is_ok());
    }

    #[test]
    fn every_failure_is_a_400_naming_it() {
        let header = sign(BODY, SECRET, 1_000);
        let case = |header: Option<&str>, body: &[u8], secret: &str, now: i64| {
            let err = verify(header, body, secret, now).unwrap_err();
            assert_eq!(err.status(), StatusCode::BAD_REQUEST);
            assert_eq!(err.code, ErrorCode::InvalidSignature);
            err.message
        };
        assert!(case(None, BODY, SECRET, 1_000).contains("missing"));
        assert!(case(Some(""), BODY, SECRET, 1_000).contains("missing"));
        assert!(case(Some("v1=abc"), BODY, SECRET, 1_000).contains("timestamp"));
        assert!(case(Some("t=1000"), BODY, SECRET, 1_000).contains("no v1"));
        assert!(
            case(Some(&header), BODY, SECRET, 1_000 + TOLERANCE_SECS + 1).contains("tolerance")
        );
        assert!(
            case(Some(&header), BODY, SECRET, 1_000 - TOLERANCE_SECS - 1).contains("tolerance")
        );
        assert!(
            case(
                Some(&header),
                BODY,
                "whsec_wrong_secret_00000000000000",
                1_000
            )
            .contains("matches")
        );
        let changed = br#"{"id":"evt_1","type":"customer.deleted"}"#;
        assert!(case(Some(&header), changed, SECRET, 1_000).contains("matches"));
        assert!(case(Some("t=1000,v1=not-hex"), BODY, SECRET, 1_000).contains("matches"));
        // The signed time is part of what is signed.
        let moved = header.replace("t=1000", "t=1001");
        assert!(case(Some(&moved), BODY, SECRET, 1_000).contains("matches"));
    }
}
