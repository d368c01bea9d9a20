//! Tokens from an identity provider: RS256 and ES256 keys published as a JWKS
//! (served over HTTP by a test server, and from a file), chosen by `kid`,
//! refreshed on rotation; `iss`/`aud` enforced; and the start-up refusal of a
//! weak HS256 key off loopback, by real `gavel` processes. The query API is the
//! API under test; the command API shares the same verifier (gavel-http).

mod common;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use common::api::Api;
use common::process::Worker;
use common::tokens::{claims, epoch_secs};
use common::TestEnv;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use openssl::ec::{EcGroup, EcKey};
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ISSUER: &str = "https://idp.test/realms/gavel";
const AUDIENCE: &str = "gavel-api";
const CURSOR_KEY: &str = "query-cursor-key-for-the-jwks-tests!";

/// A signing key of the test's identity provider and its public JWK.
struct IdpKey {
    kid: String,
    algorithm: Algorithm,
    signing: EncodingKey,
    jwk: Value,
}

impl IdpKey {
    fn rsa(kid: &str) -> Self {
        let rsa = Rsa::generate(2048).expect("RSA key");
        let der = rsa.private_key_to_der().expect("PKCS#1 DER");
        Self::new(kid, Algorithm::RS256, EncodingKey::from_rsa_der(&der))
    }

    fn ec(kid: &str) -> Self {
        let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("P-256");
        let key = PKey::from_ec_key(EcKey::generate(&group).expect("EC key")).expect("pkey");
        let der = key.private_key_to_pkcs8().expect("PKCS#8 DER");
        Self::new(kid, Algorithm::ES256, EncodingKey::from_ec_der(&der))
    }

    fn new(kid: &str, algorithm: Algorithm, signing: EncodingKey) -> Self {
        let mut jwk = Jwk::from_encoding_key(&signing, algorithm).expect("public JWK");
        jwk.common.key_id = Some(kid.to_owned());
        Self {
            kid: kid.to_owned(),
            algorithm,
            signing,
            jwk: serde_json::to_value(jwk).expect("JWK JSON"),
        }
    }

    /// A token of `user` in tenant t1 with the right issuer and audience.
    fn token(&self, user: &str) -> String {
        self.token_with(self.algorithm, &self.kid, idp_claims(user))
    }

    fn token_with(&self, algorithm: Algorithm, kid: &str, claims: Value) -> String {
        let mut header = Header::new(algorithm);
        header.kid = Some(kid.to_owned());
        encode(&header, &claims, &self.signing).expect("token")
    }
}

fn idp_claims(user: &str) -> Value {
    let mut claims = claims(user, "t1", &[], 300);
    claims["iss"] = json!(ISSUER);
    claims["aud"] = json!(AUDIENCE);
    claims
}

fn jwks(keys: &[&IdpKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() })
}

/// An identity provider's JWKS endpoint that counts its fetches.
#[derive(Clone, Default)]
struct JwksServer {
    document: Arc<Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
}

impl JwksServer {
    async fn start(document: Value) -> (Self, String) {
        let server = Self::default();
        *server.document.lock().expect("lock") = document;
        let app = Router::new()
            .route("/certs", get(serve_jwks))
            .with_state(server.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/certs", listener.local_addr().expect("address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        (server, url)
    }

    fn publish(&self, document: Value) {
        *self.document.lock().expect("lock") = document;
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

async fn serve_jwks(State(server): State<JwksServer>) -> Json<Value> {
    server.fetches.fetch_add(1, Ordering::SeqCst);
    Json(server.document.lock().expect("lock").clone())
}

/// The status and error reason of `GET /auctions` with `token`.
async fn ask(api: &Api, token: &str) -> (u16, String) {
    let (status, body) = api.get("/auctions", Some(token)).await;
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rs256_and_es256_tokens_from_a_jwks_url_are_chosen_by_kid_and_rotation_is_picked_up() {
    let mut env = TestEnv::new(1).await;
    env.start_sink(); // creates the read model, so an accepted token gets a 200
    let (rsa, ec, next) = (
        IdpKey::rsa("rsa-1"),
        IdpKey::ec("ec-1"),
        IdpKey::rsa("rsa-2"),
    );
    let (idp, url) = JwksServer::start(jwks(&[&rsa, &ec])).await;
    let api = Api::start_with(
        &env,
        &[
            ("GAVEL_JWT_SECRET", ""), // HS256 off: only the identity provider's keys
            ("GAVEL_JWT_JWKS_URL", &url),
            ("GAVEL_JWT_ISSUER", ISSUER),
            ("GAVEL_JWT_AUDIENCE", AUDIENCE),
            ("GAVEL_QUERY_CURSOR_KEY", CURSOR_KEY),
        ],
    )
    .await;
    let ready = common::eventually(Duration::from_secs(60), || async {
        (ask(&api, &rsa.token("ann")).await.0 == 200).then_some(())
    })
    .await;
    assert!(
        ready.is_some(),
        "an RS256 token of a published key is accepted"
    );
    assert_eq!(ask(&api, &ec.token("bob")).await.0, 200, "ES256 too");

    let mut wrong_issuer = idp_claims("ann");
    wrong_issuer["iss"] = json!("https://evil.test");
    let mut wrong_audience = idp_claims("ann");
    wrong_audience["aud"] = json!("another-api");
    let hs256 = encode(
        &Header::default(),
        &idp_claims("ann"),
        &EncodingKey::from_secret(&[7u8; 48]),
    )
    .expect("token");
    for (token, reason) in [
        (
            rsa.token_with(Algorithm::RS256, "rsa-1", wrong_issuer),
            "issuer",
        ),
        (
            rsa.token_with(Algorithm::RS256, "rsa-1", wrong_audience),
            "audience",
        ),
        // Signed by the not yet published key but naming a published kid.
        (
            next.token_with(Algorithm::RS256, "rsa-1", idp_claims("ann")),
            "signature",
        ),
        // An EC key's kid on an RS256 token: each key serves its own algorithm.
        (
            rsa.token_with(Algorithm::RS256, "ec-1", idp_claims("ann")),
            "does not match",
        ),
        (hs256, "HS256 tokens are not accepted"),
    ] {
        let (status, got) = ask(&api, &token).await;
        assert_eq!(status, 401, "{reason}: {got}");
        assert!(got.contains(reason), "{reason}: {got}");
    }

    // Rotation: a token of a key the provider publishes later is refused
    // until then, and accepted without a restart once it is published.
    let (status, got) = ask(&api, &next.token("ann")).await;
    assert_eq!((status, got.contains("unknown key")), (401, true), "{got}");
    idp.publish(jwks(&[&rsa, &ec, &next]));
    let rotated = common::eventually(Duration::from_secs(20), || async {
        (ask(&api, &next.token("ann")).await.0 == 200).then_some(())
    })
    .await;
    assert!(
        rotated.is_some(),
        "the new key is fetched on its unknown kid"
    );

    // Unknown kids cannot turn requests into fetches: one per gap at most.
    let before = idp.fetches();
    for n in 0..40 {
        let token = rsa.token_with(Algorithm::RS256, &format!("random-{n}"), idp_claims("x"));
        assert_eq!(ask(&api, &token).await.0, 401);
    }
    let fetched = idp.fetches() - before;
    assert!(
        fetched <= 2,
        "40 unknown kids caused {fetched} JWKS fetches"
    );
    api.stop().await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn es256_keys_from_a_jwks_file_are_reread_and_a_removed_key_stops_working() {
    let mut env = TestEnv::new(1).await;
    env.start_sink();
    let (old, new) = (IdpKey::ec("ec-old"), IdpKey::ec("ec-new"));
    let file = std::env::temp_dir().join(format!("{}-jwks.json", env.config.instance_id));
    std::fs::write(&file, jwks(&[&old]).to_string()).expect("write JWKS");
    let path = file.display().to_string();
    let api = Api::start_with(
        &env,
        &[
            ("GAVEL_JWT_JWKS_FILE", path.as_str()),
            ("GAVEL_JWT_JWKS_REFRESH_SECS", "1"),
            ("GAVEL_JWT_ISSUER", ISSUER),
            ("GAVEL_JWT_AUDIENCE", AUDIENCE),
        ],
    )
    .await;
    let ready = common::eventually(Duration::from_secs(60), || async {
        (ask(&api, &old.token("ann")).await.0 == 200).then_some(())
    })
    .await;
    assert!(
        ready.is_some(),
        "an ES256 token of the file's key is accepted"
    );
    // HS256 stays on beside the file (GAVEL_JWT_SECRET is set): both work.
    let service = common::tokens::hs256(&api.config, &idp_claims("svc"));
    assert_eq!(ask(&api, &service).await.0, 200);

    std::fs::write(&file, jwks(&[&new]).to_string()).expect("rotate JWKS");
    let rotated = common::eventually(Duration::from_secs(20), || async {
        let (old_status, _) = ask(&api, &old.token("ann")).await;
        let (new_status, _) = ask(&api, &new.token("ann")).await;
        (old_status == 401 && new_status == 200).then_some(())
    })
    .await;
    assert!(rotated.is_some(), "the re-read file replaced the old key");
    let expired = {
        let mut claims = idp_claims("ann");
        claims["exp"] = json!(epoch_secs() - 60);
        new.token_with(Algorithm::ES256, "ec-new", claims)
    };
    assert!(ask(&api, &expired).await.1.contains("expired"));
    api.stop().await;
    let _ = std::fs::remove_file(&file);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_api_reachable_off_loopback_refuses_a_weak_hs256_key_at_start() {
    let env = TestEnv::new(1).await;
    for role in ["query-api", "command-api"] {
        for (secret, reason) in [
            (
                gavel_runtime::config::LOCAL_JWT_SECRET,
                "built-in local default",
            ),
            ("short-secret", "shorter than 32 bytes"),
            ("", "no way to verify tokens"),
        ] {
            let command = format!("{role} --listen 0.0.0.0:0");
            let mut worker =
                Worker::spawn_with_env(&env, &command, "weak", &[("GAVEL_JWT_SECRET", secret)]);
            assert!(
                worker.exited_within(Duration::from_secs(60)),
                "{role} with {secret:?} did not refuse to start"
            );
            let status = worker.child.wait().expect("exit status");
            assert!(!status.success(), "{role} with {secret:?} exited 0");
            let log = std::fs::read_to_string(&worker.log).expect("log");
            assert!(log.contains(reason), "{role} {secret:?}: {log}");
        }
    }
    // The same default key on loopback: the API starts (a laptop, the demo).
    let mut local = Worker::spawn_with_env(
        &env,
        "query-api --listen 127.0.0.1:0",
        "local",
        &[("GAVEL_JWT_SECRET", gavel_runtime::config::LOCAL_JWT_SECRET)],
    );
    let started = common::eventually(Duration::from_secs(30), || async {
        let log = std::fs::read_to_string(&local.log).ok()?;
        log.contains("query api listening").then_some(())
    })
    .await;
    assert!(
        started.is_some(),
        "query-api on loopback starts with the default key"
    );
    assert!(!local.exited_within(Duration::from_millis(200)));
    local.stop();
    env.stop().await;
}
