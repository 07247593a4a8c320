//! A Request URL's proof that Slack sent the request, as
//! <https://docs.slack.dev/authentication/verifying-requests-from-slack> describes it:
//! `X-Slack-Signature` is `v0=` and the hex HMAC-SHA256, keyed with the app's signing secret, of
//! `v0:{X-Slack-Request-Timestamp}:{body}`; a timestamp more than five minutes from now is
//! refused, so that a recorded request cannot be played again later.

use aws_lc_rs::hmac;

use crate::secret::Secret;

/// How far a request's timestamp may be from now, in seconds.
pub const MAX_AGE_SECS: i64 = 5 * 60;

/// Why a request is refused; said in its 401, never with the secret or the signature expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Missing,
    Stale,
    Wrong,
}

impl Refused {
    pub fn reason(self) -> &'static str {
        match self {
            Self::Missing => "X-Slack-Request-Timestamp and X-Slack-Signature are required",
            Self::Stale => "X-Slack-Request-Timestamp is more than 5 minutes from now",
            Self::Wrong => "X-Slack-Signature does not match the body",
        }
    }
}

/// Whether `body` with `timestamp` and `signature` (the headers' values) was signed with
/// `secret`, at `now` (Unix seconds). The comparison takes the same time whatever the
/// signature.
pub fn verify(
    secret: &Secret,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), Refused> {
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(Refused::Missing);
    };
    let at: i64 = timestamp.trim().parse().map_err(|_| Refused::Missing)?;
    if (now - at).abs() > MAX_AGE_SECS {
        return Err(Refused::Stale);
    }
    let hex = signature.trim().strip_prefix("v0=").ok_or(Refused::Wrong)?;
    let tag = decode_hex(hex).ok_or(Refused::Wrong)?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.expose().as_bytes());
    let mut signed = Vec::with_capacity(body.len() + 32);
    signed.extend_from_slice(b"v0:");
    signed.extend_from_slice(timestamp.trim().as_bytes());
    signed.push(b':');
    signed.extend_from_slice(body);
    hmac::verify(&key, &signed, &tag).map_err(|_| Refused::Wrong)
}

/// What Slack would send as `X-Slack-Signature` for `body` at `timestamp` (for tests and fakes).
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut signed = format!("v0:{timestamp}:").into_bytes();
    signed.extend_from_slice(body);
    format!("v0={}", crate::tls::hex(hmac::sign(&key, &signed).as_ref()))
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of Slack's page: its secret, timestamp, body and signature.
    #[test]
    fn slacks_own_example_verifies() {
        let secret = Secret::new("8f742231b10e8888abcd99yyyzzz85a5");
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let signature = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
        let at = 1531420618;
        assert_eq!(sign(secret.expose(), "1531420618", body), signature);
        assert_eq!(
            verify(&secret, Some("1531420618"), Some(signature), body, at),
            Ok(())
        );
        assert_eq!(
            verify(
                &secret,
                Some("1531420618"),
                Some(signature),
                body,
                at + MAX_AGE_SECS + 1
            ),
            Err(Refused::Stale)
        );
        let mut changed = body.to_vec();
        changed[0] = b'T';
        assert_eq!(
            verify(&secret, Some("1531420618"), Some(signature), &changed, at),
            Err(Refused::Wrong)
        );
        assert_eq!(
            verify(&secret, None, Some(signature), body, at),
            Err(Refused::Missing)
        );
        assert_eq!(
            verify(&secret, Some("1531420618"), Some("v0=zz"), body, at),
            Err(Refused::Wrong)
        );
    }
}
