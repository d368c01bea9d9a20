//! An identity provider's public keys (RFC 7517 JWKS) from a URL or a file,
//! by `kid`. Only signature keys an algorithm fits are kept: RSA for RS256,
//! EC P-256 for ES256; symmetric (`oct`) and other keys are skipped, so a key
//! set can never hand out an HMAC secret. Refreshed every `refresh`, and at
//! once when a token names a `kid` not held (a key rotation), at most every
//! `UNKNOWN_KID_GAP` so random kids cannot turn requests into fetches.

use crate::{ApiError, HttpError};
use gavel_runtime::Shutdown;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// The least time between two fetches caused by unknown kids.
pub const UNKNOWN_KID_GAP: Duration = Duration::from_secs(5);
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// A key set is a few KiB; anything near this is not one.
const MAX_JWKS_BYTES: usize = 1 << 20;
const MAX_KEYS: usize = 100;

pub(crate) enum Source {
    Url {
        client: reqwest::Client,
        url: String,
    },
    File(PathBuf),
}

impl Source {
    pub(crate) fn url(url: &str) -> Result<Self, HttpError> {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|e| HttpError::Jwks(format!("HTTP client: {e}")))?;
        Ok(Self::Url {
            client,
            url: url.to_owned(),
        })
    }

    fn describe(&self) -> String {
        match self {
            Self::Url { url, .. } => url.clone(),
            Self::File(path) => path.display().to_string(),
        }
    }

    async fn read(&self) -> Result<Vec<u8>, String> {
        match self {
            Self::Url { client, url } => fetch(client, url).await,
            Self::File(path) => {
                let bytes = tokio::fs::read(path).await.map_err(|e| e.to_string())?;
                if bytes.len() > MAX_JWKS_BYTES {
                    return Err(format!("larger than {MAX_JWKS_BYTES} bytes"));
                }
                Ok(bytes)
            }
        }
    }
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let mut response = client.get(url).send().await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("HTTP {}", response.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(format!("larger than {MAX_JWKS_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

struct Key {
    algorithm: Algorithm,
    key: Arc<DecodingKey>,
}

pub(crate) struct KeySet {
    source: Source,
    keys: RwLock<HashMap<String, Key>>,
    /// When the keys were last fetched; held while fetching, so concurrent
    /// unknown kids wait for one fetch instead of each starting their own.
    fetched: tokio::sync::Mutex<Instant>,
}

impl KeySet {
    /// Reads the key set once; it must hold at least one usable key.
    pub(crate) async fn load(source: Source) -> Result<Arc<Self>, HttpError> {
        let keys = read_keys(&source)
            .await
            .map_err(|e| HttpError::Jwks(format!("{}: {e}", source.describe())))?;
        tracing::info!(source = %source.describe(), keys = keys.len(), "JWKS loaded");
        Ok(Arc::new(Self {
            source,
            keys: RwLock::new(keys),
            fetched: tokio::sync::Mutex::new(Instant::now()),
        }))
    }

    /// Re-reads the key set every `every` until `shutdown`.
    pub(crate) fn refresh_every(self: &Arc<Self>, every: Duration, shutdown: Shutdown) {
        let keys = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.triggered() => break,
                    _ = tokio::time::sleep(every) => {}
                }
                let mut fetched = keys.fetched.lock().await;
                keys.refetch(&mut fetched).await;
            }
        });
    }

    /// The key `kid` names, for a token signed with `algorithm`.
    pub(crate) async fn key(
        &self,
        kid: &str,
        algorithm: Algorithm,
    ) -> Result<Arc<DecodingKey>, ApiError> {
        if self.lookup(kid).is_none() {
            self.refetch_for_unknown_kid().await;
        }
        match self.lookup(kid) {
            Some((held, key)) if held == algorithm => Ok(key),
            Some(_) => Err(ApiError::unauthorized(
                "token algorithm does not match its key",
            )),
            None => Err(ApiError::unauthorized(
                "token signed with an unknown key (kid)",
            )),
        }
    }

    fn lookup(&self, kid: &str) -> Option<(Algorithm, Arc<DecodingKey>)> {
        let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
        keys.get(kid).map(|k| (k.algorithm, Arc::clone(&k.key)))
    }

    async fn refetch_for_unknown_kid(&self) {
        let mut fetched = self.fetched.lock().await;
        if fetched.elapsed() >= UNKNOWN_KID_GAP {
            self.refetch(&mut fetched).await;
        }
    }

    /// A failed or empty read keeps the keys held: an identity provider's
    /// outage must not lock every user out.
    async fn refetch(&self, fetched: &mut Instant) {
        *fetched = Instant::now();
        match read_keys(&self.source).await {
            Ok(keys) => {
                tracing::debug!(keys = keys.len(), "JWKS refreshed");
                *self.keys.write().unwrap_or_else(PoisonError::into_inner) = keys;
            }
            Err(error) => tracing::warn!(
                source = %self.source.describe(),
                %error,
                "JWKS refresh failed; keeping the keys held"
            ),
        }
    }
}

async fn read_keys(source: &Source) -> Result<HashMap<String, Key>, String> {
    let bytes = source.read().await?;
    let keys = parse(&bytes)?;
    if keys.is_empty() {
        return Err(
            "no usable key: expected RSA (RS256) or EC P-256 (ES256) signature keys with a kid"
                .into(),
        );
    }
    Ok(keys)
}

/// The usable keys of a JWKS document; a key this API cannot use is skipped
/// (logged), so one exotic key does not void the whole set.
fn parse(bytes: &[u8]) -> Result<HashMap<String, Key>, String> {
    let document: Value = serde_json::from_slice(bytes).map_err(|_| "not JSON".to_owned())?;
    let entries = document
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("no \"keys\" array")?;
    let mut keys = HashMap::new();
    for entry in entries.iter().take(MAX_KEYS) {
        let usable = serde_json::from_value::<Jwk>(entry.clone())
            .map_err(|e| e.to_string())
            .and_then(|jwk| usable_key(&jwk));
        match usable {
            Ok((kid, key)) => {
                keys.insert(kid, key);
            }
            Err(reason) => tracing::debug!(%reason, "JWKS entry skipped"),
        }
    }
    Ok(keys)
}

fn usable_key(jwk: &Jwk) -> Result<(String, Key), String> {
    let kid = jwk.common.key_id.clone().ok_or("no kid")?;
    if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
        return Err(format!("{kid}: not a signature key"));
    }
    let (algorithm, declared) = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => (Algorithm::RS256, KeyAlgorithm::RS256),
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            (Algorithm::ES256, KeyAlgorithm::ES256)
        }
        _ => return Err(format!("{kid}: key type not accepted")),
    };
    if jwk.common.key_algorithm.is_some_and(|alg| alg != declared) {
        return Err(format!("{kid}: algorithm not accepted"));
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("{kid}: {e}"))?;
    Ok((
        kid,
        Key {
            algorithm,
            key: Arc::new(key),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_signature_keys_of_accepted_types_with_a_kid_are_kept() {
        let rsa = json!({"kty": "RSA", "kid": "r1", "use": "sig", "alg": "RS256",
                         "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw",
                         "e": "AQAB"});
        let document = json!({"keys": [
            rsa,
            {"kty": "oct", "kid": "h1", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "kid": "ps", "alg": "PS256", "n": "AQAB", "e": "AQAB"},
            {"kty": "weird", "kid": "w"},
        ]});
        let keys = parse(document.to_string().as_bytes()).expect("parsed");
        let kids: Vec<&String> = keys.keys().collect();
        assert_eq!(kids, ["r1"]);
        assert_eq!(keys["r1"].algorithm, Algorithm::RS256);
        assert!(parse(b"[]").is_err());
        assert!(parse(b"not json").is_err());
    }
}
