//! The settings of the two HTTP APIs' access control and limits (read by
//! `gavel-http`), kept apart from the rest of `Config` so they parse and print
//! as one block. Their defaults and descriptions are in `config::SETTINGS`.

use crate::config::{positive, Secret};
use crate::Result;
use std::collections::HashMap;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// JWKS URL of an identity provider (empty: none).
    pub jwks_url: String,
    /// JWKS file (empty: none).
    pub jwks_file: String,
    pub jwks_refresh: Duration,
    /// Required `iss` (empty: not checked).
    pub issuer: String,
    /// Required `aud` (empty: not checked).
    pub audience: String,
    pub max_token_lifetime: Duration,
    /// Dotted path of the tenant claim.
    pub tenant_claim: String,
    /// Dotted path of the roles claim.
    pub roles_claim: String,
    pub header_timeout: Duration,
    pub request_timeout: Duration,
    pub max_connections: usize,
    pub max_streams_per_client: usize,
    pub max_streams_per_user: usize,
    /// HMAC key of query cursors (empty: derived from the JWT secret).
    pub cursor_key: Secret,
    pub idempotency_ttl: Duration,
}

impl HttpSettings {
    pub(crate) fn from_values(values: &HashMap<String, String>) -> Result<Self> {
        let get = |key: &str| values.get(key).cloned().unwrap_or_default();
        let secs = |key: &str| positive(values, key).map(|n| Duration::from_secs(n as u64));
        let millis = |key: &str| positive(values, key).map(|n| Duration::from_millis(n as u64));
        let count = |key: &str| positive(values, key).map(|n| n as usize);
        Ok(Self {
            jwks_url: get("GAVEL_JWT_JWKS_URL"),
            jwks_file: get("GAVEL_JWT_JWKS_FILE"),
            jwks_refresh: secs("GAVEL_JWT_JWKS_REFRESH_SECS")?,
            issuer: get("GAVEL_JWT_ISSUER"),
            audience: get("GAVEL_JWT_AUDIENCE"),
            max_token_lifetime: secs("GAVEL_JWT_MAX_LIFETIME_SECS")?,
            tenant_claim: get("GAVEL_JWT_TENANT_CLAIM"),
            roles_claim: get("GAVEL_JWT_ROLES_CLAIM"),
            header_timeout: millis("GAVEL_HTTP_HEADER_TIMEOUT_MS")?,
            request_timeout: millis("GAVEL_HTTP_REQUEST_TIMEOUT_MS")?,
            max_connections: count("GAVEL_HTTP_MAX_CONNECTIONS")?,
            max_streams_per_client: count("GAVEL_HTTP_MAX_STREAMS_PER_CLIENT")?,
            max_streams_per_user: count("GAVEL_QUERY_MAX_STREAMS_PER_USER")?,
            cursor_key: Secret::new(get("GAVEL_QUERY_CURSOR_KEY")),
            idempotency_ttl: secs("GAVEL_IDEMPOTENCY_TTL_SECS")?,
        })
    }

    pub(crate) fn to_env(&self) -> Vec<(&'static str, String)> {
        let secs = |d: Duration| d.as_secs().to_string();
        let millis = |d: Duration| d.as_millis().to_string();
        vec![
            ("GAVEL_JWT_JWKS_URL", self.jwks_url.clone()),
            ("GAVEL_JWT_JWKS_FILE", self.jwks_file.clone()),
            ("GAVEL_JWT_JWKS_REFRESH_SECS", secs(self.jwks_refresh)),
            ("GAVEL_JWT_ISSUER", self.issuer.clone()),
            ("GAVEL_JWT_AUDIENCE", self.audience.clone()),
            ("GAVEL_JWT_MAX_LIFETIME_SECS", secs(self.max_token_lifetime)),
            ("GAVEL_JWT_TENANT_CLAIM", self.tenant_claim.clone()),
            ("GAVEL_JWT_ROLES_CLAIM", self.roles_claim.clone()),
            ("GAVEL_HTTP_HEADER_TIMEOUT_MS", millis(self.header_timeout)),
            (
                "GAVEL_HTTP_REQUEST_TIMEOUT_MS",
                millis(self.request_timeout),
            ),
            (
                "GAVEL_HTTP_MAX_CONNECTIONS",
                self.max_connections.to_string(),
            ),
            (
                "GAVEL_HTTP_MAX_STREAMS_PER_CLIENT",
                self.max_streams_per_client.to_string(),
            ),
            (
                "GAVEL_QUERY_MAX_STREAMS_PER_USER",
                self.max_streams_per_user.to_string(),
            ),
            (
                "GAVEL_QUERY_CURSOR_KEY",
                self.cursor_key.expose().to_owned(),
            ),
            ("GAVEL_IDEMPOTENCY_TTL_SECS", secs(self.idempotency_ttl)),
        ]
    }
}
