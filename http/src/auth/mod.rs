//! Bearer tokens, one verifier for both APIs. A token is a JWT signed with
//!
//! * HS256 and `GAVEL_JWT_SECRET` (local use, services minting their own
//!   tokens; off when the secret is empty), or
//! * RS256 or ES256 by an identity provider whose public keys come from
//!   `GAVEL_JWT_JWKS_URL` or `GAVEL_JWT_JWKS_FILE`, chosen by the token's `kid`.
//!
//! Any other algorithm (`none` included) is refused, and each key serves only
//! its own algorithm. A token must carry `sub` (the user), the tenant claim,
//! `exp` within `GAVEL_JWT_MAX_LIFETIME_SECS` of now and of `iat`; `nbf` is
//! honoured; `iss` and `aud` must match when configured; roles come from an
//! optional array claim, `operator` among them granting operator reads.
//! `X-Tenant-Id` is not needed; one naming another tenant is refused (403).

mod claims;
mod jwks;

use crate::{keys, ApiError, HttpError};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use gavel_runtime::{Config, Shutdown};
use jsonwebtoken::{decode, decode_header, get_current_timestamp, Algorithm, DecodingKey, Header};
use serde_json::{Map, Value};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use jwks::UNKNOWN_KID_GAP;

/// The role that may read any user's data within its tenant.
pub const OPERATOR_ROLE: &str = "operator";
/// A legacy header some clients still send; must agree with the token.
pub const TENANT_HEADER: &str = "x-tenant-id";
/// Longer than any real JWT; a bigger header is not worth parsing.
const MAX_TOKEN_BYTES: usize = 8 * 1024;
const MAX_KID_LEN: usize = 256;

/// Who sent the request, as its verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub tenant: String,
    pub roles: Vec<String>,
    /// The token's `exp` (Unix seconds).
    pub expires_at: u64,
}

impl User {
    pub fn is_operator(&self) -> bool {
        self.roles.iter().any(|r| r == OPERATOR_ROLE)
    }

    /// How long the token stays valid (zero once expired).
    pub fn valid_for(&self) -> Duration {
        Duration::from_secs(self.expires_at.saturating_sub(get_current_timestamp()))
    }
}

pub struct Verifier {
    hs256: Option<Arc<DecodingKey>>,
    jwks: Option<Arc<jwks::KeySet>>,
    rules: claims::ClaimRules,
}

impl Verifier {
    /// The verifier of an API listening on `listener`: refuses a weak HS256
    /// key off loopback (see [`keys`]) and a configuration that could verify
    /// nothing; loads the JWKS (it must be readable now) and keeps it fresh
    /// until `shutdown`.
    pub async fn start(
        config: &Config,
        listener: SocketAddr,
        shutdown: &Shutdown,
    ) -> Result<Self, HttpError> {
        let settings = &config.http;
        let secret = config.jwt_secret.expose();
        let hs256 = if secret.is_empty() {
            None
        } else {
            keys::check("GAVEL_JWT_SECRET", secret, listener)?;
            Some(Arc::new(DecodingKey::from_secret(secret.as_bytes())))
        };
        let source = match (settings.jwks_url.trim(), settings.jwks_file.trim()) {
            ("", "") => None,
            (url, "") => Some(jwks::Source::url(url)?),
            ("", file) => Some(jwks::Source::File(PathBuf::from(file))),
            _ => {
                return Err(HttpError::Config(
                    "set GAVEL_JWT_JWKS_URL or GAVEL_JWT_JWKS_FILE, not both".into(),
                ))
            }
        };
        let jwks = match source {
            Some(source) => {
                let keys = jwks::KeySet::load(source).await?;
                keys.refresh_every(settings.jwks_refresh, shutdown.clone());
                Some(keys)
            }
            None if hs256.is_none() => {
                return Err(HttpError::Config(
                    "no way to verify tokens: set GAVEL_JWT_SECRET (HS256) or \
                     GAVEL_JWT_JWKS_URL / GAVEL_JWT_JWKS_FILE (RS256, ES256)"
                        .into(),
                ))
            }
            None => None,
        };
        Ok(Self {
            hs256,
            jwks,
            rules: claims::ClaimRules::new(settings),
        })
    }

    /// The user of a request, or 401 saying what is wrong with its
    /// credentials (403 for a contradicting `X-Tenant-Id`).
    pub async fn user(&self, headers: &HeaderMap) -> Result<User, ApiError> {
        let token = bearer(headers)?;
        let header = decode_header(token).map_err(|_| ApiError::unauthorized("token malformed"))?;
        let key = self.key_for(&header).await?;
        let validation = self.rules.validation(header.alg);
        let data = decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(|e| ApiError::unauthorized(claims::reason(e.kind())))?;
        let user = self.rules.user(&data.claims, get_current_timestamp())?;
        if let Some(named) = headers.get(TENANT_HEADER) {
            if named.as_bytes() != user.tenant.as_bytes() {
                return Err(ApiError::forbidden(
                    "X-Tenant-Id names another tenant than the token; the token's tenant applies (the header is not needed)",
                ));
            }
        }
        Ok(user)
    }

    async fn key_for(&self, header: &Header) -> Result<Arc<DecodingKey>, ApiError> {
        match header.alg {
            Algorithm::HS256 => self
                .hs256
                .clone()
                .ok_or_else(|| ApiError::unauthorized("HS256 tokens are not accepted here")),
            Algorithm::RS256 | Algorithm::ES256 => {
                let keys = self.jwks.as_ref().ok_or_else(|| {
                    ApiError::unauthorized("RS256 and ES256 tokens are not accepted here (no JWKS)")
                })?;
                let kid = header
                    .kid
                    .as_deref()
                    .filter(|kid| !kid.is_empty() && kid.len() <= MAX_KID_LEN)
                    .ok_or_else(|| ApiError::unauthorized("token header lacks a valid kid"))?;
                keys.key(kid, header.alg).await
            }
            _ => Err(ApiError::unauthorized(
                "token algorithm not accepted (HS256, RS256 or ES256)",
            )),
        }
    }
}

fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <token>"))?;
    if value.len() > MAX_TOKEN_BYTES {
        return Err(ApiError::unauthorized("token too long"));
    }
    value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::unauthorized("Authorization must be `Bearer <token>`"))
}

/// A state whose handlers take the request's [`User`] as an argument.
pub trait Authenticates {
    fn verifier(&self) -> &Verifier;
}

impl<S> FromRequestParts<Arc<S>> for User
where
    S: Authenticates + Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<S>) -> Result<Self, ApiError> {
        state.verifier().user(&parts.headers).await
    }
}

#[cfg(test)]
mod tests;
