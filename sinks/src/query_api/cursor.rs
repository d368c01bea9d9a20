//! Page cursors: opaque to clients, signed so they can be neither forged nor
//! altered, and bounded in length. A cursor is `hex(plain) "." hex(tag)` with
//! an HMAC-SHA256 tag over the plain text; every replica holds the same key
//! (`GAVEL_QUERY_CURSOR_KEY`, or one derived from `GAVEL_JWT_SECRET`), so a
//! page started on one replica continues on any other. Anything wrong with a
//! cursor is a 400 saying so, never a database error.

use gavel_http::signing::{Signer, TAG_BYTES};
use gavel_http::{keys, HttpError};
use gavel_runtime::Config;
use std::net::SocketAddr;

/// Longer than any cursor this API hands out (the plain text holds an id of
/// at most 256 characters, doubled by hex).
pub const MAX_CURSOR_LEN: usize = 1024;
/// The instants Postgres can compute `'epoch' + n ms` for: a key outside is
/// refused before it reaches SQL ("interval out of range" would be a 500).
pub const MIN_TIMESTAMP_MS: i64 = -210_866_803_200_000;
pub const MAX_TIMESTAMP_MS: i64 = 9_000_000_000_000_000;
const INVALID: &str = "cursor is not valid: pass next_cursor of a previous page as is";

pub struct Cursors {
    signer: Signer,
}

impl Cursors {
    /// The cursor key of an API listening on `listener`: the setting if
    /// given, else derived from the JWT secret; weak keys only on loopback.
    pub fn from_config(config: &Config, listener: SocketAddr) -> Result<Self, HttpError> {
        let own = config.http.cursor_key.expose();
        if !own.is_empty() {
            keys::check("GAVEL_QUERY_CURSOR_KEY", own, listener)?;
            return Ok(Self::new(Signer::new(own.as_bytes())));
        }
        let secret = config.jwt_secret.expose();
        keys::check(
            "GAVEL_QUERY_CURSOR_KEY (empty: derived from GAVEL_JWT_SECRET)",
            secret,
            listener,
        )?;
        Ok(Self::new(Signer::derived("query-cursor", secret)))
    }

    pub fn new(signer: Signer) -> Self {
        Self { signer }
    }

    pub fn seal(&self, plain: &str) -> String {
        let tag = self.signer.sign(plain.as_bytes());
        format!("{}.{}", hex(plain.as_bytes()), hex(&tag))
    }

    /// The plain text of a cursor this API sealed, or why not.
    pub fn open(&self, raw: &str) -> Result<String, String> {
        if raw.len() > MAX_CURSOR_LEN {
            return Err(format!("cursor is longer than {MAX_CURSOR_LEN} characters"));
        }
        let (plain, tag) = raw.split_once('.').ok_or(INVALID)?;
        let plain = hex_decode(plain).ok_or(INVALID)?;
        let tag = hex_decode(tag)
            .filter(|t| t.len() == TAG_BYTES)
            .ok_or(INVALID)?;
        if !self.signer.verify(&plain, &tag) {
            return Err("cursor is not valid: it was altered or not issued by this API".into());
        }
        String::from_utf8(plain).map_err(|_| INVALID.to_owned())
    }
}

/// A sort key holding an instant, checked against what Postgres can compute.
pub fn timestamp_ms(raw: &str) -> Result<i64, String> {
    let ms: i64 = raw.parse().map_err(|_| INVALID.to_owned())?;
    if (MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS).contains(&ms) {
        Ok(ms)
    } else {
        Err("cursor is not valid: its timestamp is out of range".into())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(raw: &str) -> Option<Vec<u8>> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) {
        return None;
    }
    let digit = |b: u8| {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    raw.as_bytes()
        .chunks(2)
        .map(|pair| Some((digit(pair[0])? << 4) | digit(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursors() -> Cursors {
        Cursors::new(Signer::derived("test", "key"))
    }

    #[test]
    fn a_sealed_cursor_opens_and_an_altered_one_does_not() {
        let sealed = cursors().seal("v1|ACTIVE|end_time|asc|5|lot-1");
        assert_eq!(
            cursors().open(&sealed).unwrap(),
            "v1|ACTIVE|end_time|asc|5|lot-1"
        );
        let forged = format!(
            "{}.{}",
            hex(b"v1|ACTIVE|end_time|asc|6|lot-1"),
            &sealed[sealed.find('.').unwrap() + 1..]
        );
        assert!(cursors().open(&forged).unwrap_err().contains("altered"));
        let other_key = Cursors::new(Signer::derived("test", "other"));
        assert!(other_key.open(&sealed).is_err());
        for junk in ["", "zz", "abc.def", &"a".repeat(MAX_CURSOR_LEN + 1)] {
            assert!(cursors().open(junk).is_err(), "{junk}");
        }
    }

    #[test]
    fn timestamps_outside_what_postgres_computes_are_refused() {
        assert_eq!(timestamp_ms("1700000000000"), Ok(1_700_000_000_000));
        for bad in [
            "10000000000000000000",
            "-210866803200001",
            "9000000000000001",
            "x",
        ] {
            assert!(timestamp_ms(bad).is_err(), "{bad}");
        }
    }
}
