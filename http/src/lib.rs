//! What Gavel's two HTTP APIs (the command API in `gavel-producers`, the query
//! API in `gavel-sinks`) share, so each rule lives in one place:
//!
//! * [`auth`]: bearer tokens. HS256 with `GAVEL_JWT_SECRET` for local use and
//!   services, RS256/ES256 from an identity provider's JWKS (URL or file,
//!   refreshed, key chosen by `kid`), `iss`/`aud`/`nbf`/lifetime checks, the
//!   tenant and roles claims. A refusal tells the client a short reason, never
//!   a library's message.
//! * [`ApiError`]: the one error body, `{"error": "reason", ...}`.
//! * [`serve()`]: the accept loop: HTTP/1.1 with a header-read timeout, a
//!   connection cap, a request timeout, request metrics and graceful shutdown.
//! * [`StreamLimiter`]: caps on open live streams per key (user, client address).
//! * [`keys`]: the rule for symmetric keys (JWT secret, cursor key): weak keys
//!   only on a loopback listener.

pub mod auth;
mod error;
pub mod keys;
mod layers;
mod response;
mod serve;
pub mod signing;
mod streams;

pub use auth::{Authenticates, User, Verifier};
pub use error::HttpError;
pub use response::ApiError;
pub use serve::{serve, ServeOptions};
pub use streams::{StreamLimiter, StreamPermit};
