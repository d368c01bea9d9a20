//! `gavel token`: an HS256 bearer token signed with `GAVEL_JWT_SECRET`, for
//! local use, the demo and scripts (`curl -H "Authorization: Bearer $(gavel
//! token --user ann --tenant demo)"`). Deployments that take tokens from an
//! identity provider (JWKS) need not hand this secret to anyone.

use anyhow::{bail, Result};
use clap::Args;
use gavel_runtime::Config;
use jsonwebtoken::{encode, get_current_timestamp, EncodingKey, Header};
use serde_json::json;

#[derive(Args)]
pub struct TokenArgs {
    /// The user (`sub`).
    #[arg(long)]
    user: String,
    /// The tenant (the `GAVEL_JWT_TENANT_CLAIM` claim).
    #[arg(long)]
    tenant: String,
    /// A role for the roles claim (repeatable), e.g. `operator`.
    #[arg(long = "role")]
    roles: Vec<String>,
    /// Seconds until the token expires (at most GAVEL_JWT_MAX_LIFETIME_SECS).
    #[arg(long, default_value_t = 3600)]
    ttl_secs: u64,
}

pub fn mint(config: &Config, args: &TokenArgs) -> Result<String> {
    hs256(config, &args.user, &args.tenant, &args.roles, args.ttl_secs)
}

/// A token of `user` in `tenant` with `roles`, valid for `ttl_secs`.
pub fn hs256(
    config: &Config,
    user: &str,
    tenant: &str,
    roles: &[String],
    ttl_secs: u64,
) -> Result<String> {
    let secret = config.jwt_secret.expose();
    if secret.is_empty() {
        bail!("GAVEL_JWT_SECRET is empty: HS256 is off, take tokens from the identity provider");
    }
    let max = config.http.max_token_lifetime.as_secs();
    if ttl_secs == 0 || ttl_secs > max {
        bail!("--ttl-secs must be 1..={max} (GAVEL_JWT_MAX_LIFETIME_SECS)");
    }
    let now = get_current_timestamp();
    let mut claims = json!({"sub": user, "iat": now, "exp": now + ttl_secs});
    claims[&config.http.tenant_claim] = json!(tenant);
    if !roles.is_empty() {
        claims[&config.http.roles_claim] = json!(roles);
    }
    Ok(encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )?)
}
