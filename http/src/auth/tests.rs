//! The HS256 path and the claim rules; RS256/ES256 with a JWKS served over
//! HTTP and from a file are tested end to end in tests/http_auth.rs.

use super::*;
use axum::http::HeaderValue;
use gavel_runtime::config::{Secret, LOCAL_JWT_SECRET};
use jsonwebtoken::{encode, EncodingKey};
use serde_json::json;

const KEY: &str = "unit-test-key-of-at-least-32-bytes!!";

fn loopback() -> SocketAddr {
    "127.0.0.1:8080".parse().expect("address")
}

fn config(secret: &str, edit: impl FnOnce(&mut Config)) -> Config {
    let mut config = Config::defaults().expect("defaults");
    config.jwt_secret = Secret::new(secret);
    edit(&mut config);
    config
}

async fn verifier(edit: impl FnOnce(&mut Config)) -> Verifier {
    Verifier::start(&config(KEY, edit), loopback(), &Shutdown::new())
        .await
        .expect("verifier")
}

fn signed(claims: Value, alg: Algorithm) -> String {
    encode(
        &Header::new(alg),
        &claims,
        &EncodingKey::from_secret(KEY.as_bytes()),
    )
    .expect("token")
}

fn headers(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let value = HeaderValue::from_str(&format!("Bearer {token}")).expect("header");
    headers.insert(header::AUTHORIZATION, value);
    headers
}

fn now() -> u64 {
    get_current_timestamp()
}

async fn refusal(verifier: &Verifier, claims: Value) -> String {
    let token = signed(claims, Algorithm::HS256);
    let error = verifier.user(&headers(&token)).await.unwrap_err();
    assert_eq!(error.status(), 401, "{error:?}");
    error.reason().to_owned()
}

#[tokio::test]
async fn a_valid_token_names_user_tenant_and_roles() {
    let verifier = verifier(|_| {}).await;
    let exp = now() + 60;
    let token = signed(
        json!({"sub": "ann", "tenant": "t1", "exp": exp, "iat": now(), "roles": ["operator"]}),
        Algorithm::HS256,
    );
    let user = verifier.user(&headers(&token)).await.expect("user");
    assert_eq!((user.id.as_str(), user.tenant.as_str()), ("ann", "t1"));
    assert!(user.is_operator());
    assert_eq!(user.expires_at, exp);
}

#[tokio::test]
async fn bad_tokens_get_a_short_reason() {
    let verifier = verifier(|_| {}).await;
    let n = now();
    let day = 24 * 3600;
    for (claims, reason) in [
        (
            json!({"sub": "a", "tenant": "t", "exp": n - 600}),
            "expired",
        ),
        (
            json!({"sub": "a", "tenant": "t", "exp": n + 600, "nbf": n + 3600}),
            "not valid yet",
        ),
        (json!({"sub": "a", "tenant": "t"}), "exp"),
        (json!({"sub": "a", "exp": n + 60}), "tenant"),
        (json!({"tenant": "t", "exp": n + 60}), "sub"),
        (
            json!({"sub": "a", "tenant": "t", "exp": 253_402_300_799u64}),
            "lifetime",
        ),
        (
            json!({"sub": "a", "tenant": "t", "exp": n + 60, "iat": n - 2 * day}),
            "lifetime",
        ),
        (
            json!({"sub": "a", "tenant": "t", "exp": n + 60, "iat": n + 3600}),
            "future",
        ),
        (
            json!({"sub": "a", "tenant": "t", "exp": n + 60, "roles": "operator"}),
            "roles",
        ),
        (json!({"sub": "a", "tenant": "t", "exp": "soon"}), "exp"),
    ] {
        let got = refusal(&verifier, claims.clone()).await;
        assert!(got.contains(reason), "{claims}: {got}");
    }
}

#[tokio::test]
async fn signatures_and_algorithms_are_checked() {
    let verifier = verifier(|_| {}).await;
    let claims = json!({"sub": "a", "tenant": "t", "exp": now() + 60});
    let forged = encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(b"another-key-of-at-least-32-bytes-long"),
    )
    .expect("token");
    let reason = verifier.user(&headers(&forged)).await.unwrap_err();
    assert!(reason.reason().contains("signature"), "{reason:?}");
    let hs512 = signed(claims.clone(), Algorithm::HS512);
    let reason = verifier.user(&headers(&hs512)).await.unwrap_err();
    assert!(reason.reason().contains("not accepted"), "{reason:?}");
    // alg "none": header {"alg":"none"}, no signature.
    let unsigned = format!(
        "eyJhbGciOiJub25lIn0.{}.",
        forged.split('.').nth(1).expect("claims part")
    );
    let reason = verifier.user(&headers(&unsigned)).await.unwrap_err();
    assert_eq!(reason.status(), 401);
    let rs256 = format!(
        "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.{}.c2ln",
        forged.split('.').nth(1).expect("claims")
    );
    let reason = verifier.user(&headers(&rs256)).await.unwrap_err();
    assert!(reason.reason().contains("no JWKS"), "{reason:?}");
    let missing = verifier.user(&HeaderMap::new()).await.unwrap_err();
    assert!(missing.reason().contains("missing"), "{missing:?}");
}

#[tokio::test]
async fn issuer_and_audience_are_checked_when_configured() {
    let verifier = verifier(|c| {
        c.http.issuer = "https://idp.example".into();
        c.http.audience = "gavel".into();
    })
    .await;
    let n = now() + 60;
    let good =
        json!({"sub": "a", "tenant": "t", "exp": n, "iss": "https://idp.example", "aud": "gavel"});
    let token = signed(good, Algorithm::HS256);
    assert!(verifier.user(&headers(&token)).await.is_ok());
    for (claims, reason) in [
        (
            json!({"sub": "a", "tenant": "t", "exp": n, "iss": "https://evil", "aud": "gavel"}),
            "issuer",
        ),
        (
            json!({"sub": "a", "tenant": "t", "exp": n, "iss": "https://idp.example", "aud": "other"}),
            "audience",
        ),
        (
            json!({"sub": "a", "tenant": "t", "exp": n, "aud": "gavel"}),
            "iss",
        ),
        (
            json!({"sub": "a", "tenant": "t", "exp": n, "iss": "https://idp.example"}),
            "aud",
        ),
    ] {
        let got = refusal(&verifier, claims.clone()).await;
        assert!(got.contains(reason), "{claims}: {got}");
    }
}

#[tokio::test]
async fn claims_are_found_by_configured_name_or_dotted_path() {
    let verifier = verifier(|c| {
        c.http.tenant_claim = "https://gavel.example/tenant".into();
        c.http.roles_claim = "realm_access.roles".into();
    })
    .await;
    let claims = json!({"sub": "a", "exp": now() + 60, "https://gavel.example/tenant": "t9",
                        "realm_access": {"roles": ["operator", "viewer"]}});
    let user = verifier
        .user(&headers(&signed(claims, Algorithm::HS256)))
        .await
        .expect("user");
    assert_eq!(user.tenant, "t9");
    assert!(user.is_operator());
}

#[tokio::test]
async fn a_tenant_header_must_agree_with_the_token() {
    let verifier = verifier(|_| {}).await;
    let token = signed(
        json!({"sub": "a", "tenant": "t1", "exp": now() + 60}),
        Algorithm::HS256,
    );
    let mut request = headers(&token);
    request.insert(TENANT_HEADER, HeaderValue::from_static("t1"));
    assert!(verifier.user(&request).await.is_ok());
    request.insert(TENANT_HEADER, HeaderValue::from_static("t2"));
    let refused = verifier.user(&request).await.unwrap_err();
    assert_eq!(refused.status(), 403);
}

#[tokio::test]
async fn weak_or_missing_keys_are_refused_at_start_off_loopback() {
    let public: SocketAddr = "0.0.0.0:8080".parse().expect("address");
    let start = |secret: &'static str, at: SocketAddr| async move {
        Verifier::start(&config(secret, |_| {}), at, &Shutdown::new()).await
    };
    for weak in [LOCAL_JWT_SECRET, "short"] {
        let error = start(weak, public).await.err().expect("refused");
        assert!(error.to_string().contains("not loopback"), "{error}");
        assert!(start(weak, loopback()).await.is_ok(), "{weak} on loopback");
    }
    let none = start("", loopback())
        .await
        .err()
        .expect("nothing to verify with");
    assert!(none.to_string().contains("no way to verify"), "{none}");
    assert!(start(KEY, public).await.is_ok());
}
