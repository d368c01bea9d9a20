//! The query API served on an ephemeral port for a test, a real HTTP client
//! with tokens of the test's own key, and JSON command lines for filling the
//! read models.

use super::{tokens, TestEnv};
use gavel_runtime::{Config, Shutdown};
use gavel_sinks::SinkError;
use serde_json::Value;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
    pub shutdown: Shutdown,
    pub config: Config,
    task: Option<JoinHandle<Result<(), SinkError>>>,
}

impl Api {
    pub async fn start(env: &TestEnv) -> Self {
        Self::start_with(env, &[]).await
    }

    /// `start` with some settings replaced (`GAVEL_*` names).
    pub async fn start_with(env: &TestEnv, overrides: &[(&str, &str)]) -> Self {
        let config = env
            .config
            .with_overrides(overrides.iter().copied())
            .expect("valid overrides");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let shutdown = Shutdown::new();
        let task = tokio::spawn(gavel_sinks::query_api::serve(
            config.clone(),
            listener,
            shutdown.clone(),
        ));
        let api = Self {
            base,
            // A bounded wait: a request the server never answers fails the
            // test with a reason instead of hanging it.
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("http client"),
            shutdown,
            config,
            task: Some(task),
        };
        let (status, _) = api.get_text("/healthz").await;
        assert_eq!(status, 200);
        api
    }

    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }

    /// A token of `user` in `tenant`, signed with the API's HS256 key.
    pub fn token(&self, tenant: &str, user: &str) -> String {
        tokens::hs256(&self.config, &tokens::claims(user, tenant, &[], 600))
    }

    /// An operator's token: may read any user's bids in `tenant`.
    pub fn operator(&self, tenant: &str, user: &str) -> String {
        tokens::hs256(
            &self.config,
            &tokens::claims(user, tenant, &["operator"], 600),
        )
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON body"))
    }

    /// Stops the server: it must return within a few seconds, live streams too.
    pub async fn stop(mut self) {
        self.shutdown.trigger();
        let task = self.task.take().expect("stopped once");
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("query api stops within 10 s")
            .expect("query api task")
            .expect("query api ended without error");
    }
}

/// Stops the server of a test that panicked before `stop`.
impl Drop for Api {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

pub async fn produce(env: &TestEnv, tenant: &str, lines: &str) {
    let report =
        gavel_producers::produce::run(&env.config, lines.as_bytes(), tenant, &Shutdown::new())
            .await
            .expect("produce runs");
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
}

pub fn create_and_start(id: &str, end_time: i64, starting_price: i64, start: bool) -> String {
    let mut lines = format!(
        r#"{{"type":"CreateAuction","auction_id":"{id}","seller_id":"sam","title":"Lot {id}","currency":"EUR","starting_price":{starting_price},"min_increment":100,"end_time":{end_time}}}"#
    );
    if start {
        lines.push_str(&format!(
            "\n{{\"type\":\"StartAuction\",\"auction_id\":\"{id}\",\"actor_id\":\"sam\"}}"
        ));
    }
    lines + "\n"
}

pub fn bid(id: &str, bidder: &str, amount: i64) -> String {
    format!(
        r#"{{"type":"PlaceBid","auction_id":"{id}","bidder_id":"{bidder}","amount":{amount},"currency":"EUR"}}"#
    )
}
