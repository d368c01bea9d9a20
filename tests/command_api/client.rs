//! An HTTP client for the command API under test, and the tokens it sends.

use crate::common::{eventually, TestEnv};
use gavel_producers::ProducerError;
use gavel_runtime::config::Secret;
use gavel_runtime::{kafka, Config, Shutdown};
use jsonwebtoken::{encode, EncodingKey, Header};
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub const SECRET: &str = "command-api-test-key-of-32-bytes-or-more";

pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
    shutdown: Shutdown,
    task: JoinHandle<Result<(), ProducerError>>,
}

pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub location: Option<String>,
    /// The answer came from the Idempotency-Key's record, not a new command.
    pub replayed: bool,
}

impl Api {
    pub async fn start(env: &TestEnv, command_timeout: Duration) -> Self {
        let mut config = env.config.clone();
        config.jwt_secret = Secret::new(SECRET);
        config.command_timeout = command_timeout;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let shutdown = Shutdown::new();
        let task = tokio::spawn(gavel_producers::command_api::serve(
            config,
            listener,
            shutdown.clone(),
        ));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("http client");
        let up = eventually(Duration::from_secs(60), || async {
            if task.is_finished() {
                return Some(false);
            }
            let response = http.get(format!("{base}/healthz")).send().await.ok()?;
            response.status().is_success().then_some(true)
        })
        .await;
        if up == Some(false) {
            let ended = task.await.expect("command api task");
            panic!("command api ended before answering /healthz: {ended:?}");
        }
        assert!(up.is_some(), "command api answers /healthz within 60 s");
        Self {
            base,
            http,
            shutdown,
            task,
        }
    }

    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
        token: Option<&str>,
        key: Option<&str>,
    ) -> Reply {
        let mut request = request;
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .map(|v| v.to_str().expect("location is text").to_owned());
        let replayed = response.headers().contains_key("idempotent-replayed");
        let body = response.json().await.expect("JSON body");
        Reply {
            status,
            body,
            location,
            replayed,
        }
    }

    pub async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        key: Option<&str>,
        body: &str,
    ) -> Reply {
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body.to_owned());
        self.send(request, token, key).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        let request = self.http.get(format!("{}{path}", self.base));
        self.send(request, Some(token), None).await
    }

    /// A 202's final answer, polled from its Location; any other reply as is.
    pub async fn settle(&self, reply: Reply, token: &str) -> Reply {
        let Some(location) = reply.location.clone().filter(|_| reply.status == 202) else {
            return reply;
        };
        eventually(Duration::from_secs(60), || async {
            let polled = self.get(&location, token).await;
            (polled.status != 404).then_some(polled)
        })
        .await
        .expect("the outcome arrives")
    }

    pub async fn stop(self) {
        self.shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("command api stops within 10 s")
            .expect("command api task")
            .expect("command api ended without error");
    }
}

pub fn epoch_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// An HS256 token for `user` in `tenant`, expiring `ttl_secs` from now.
pub fn token_with(secret: &str, user: &str, tenant: &str, ttl_secs: i64) -> String {
    let claims = json!({"sub": user, "tenant": tenant, "exp": epoch_secs() + ttl_secs});
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("token")
}

pub fn token(user: &str, tenant: &str) -> String {
    token_with(SECRET, user, tenant, 600)
}

/// Records on a topic that is not written transactionally (the command topic):
/// the sum of its partitions' high watermarks.
pub fn record_count(config: &Config, topic: &str) -> i64 {
    let consumer: BaseConsumer = kafka::client_config(config).create().expect("consumer");
    (0..config.partitions)
        .map(|p| {
            let (low, high) = kafka::retry_leaderless(|| {
                consumer.fetch_watermarks(topic, p, Duration::from_secs(10))
            })
            .expect("watermarks");
            high - low
        })
        .sum()
}
