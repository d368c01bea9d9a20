//! `gavel load --via http`: each command is a request to the command API, as
//! the user who sends it (an HS256 token minted per user with the configured
//! secret), over a pool of keep-alive connections. The API answers with the
//! outcome (201/200 accepted, 409/404/422 rejected) or 202 when it stopped
//! waiting; latency is from the command's due time to the answer.

use super::tally::{Completion, Tally};
use super::traffic::Planned;
use super::{drive, AcceptedSink, Dispatch, LoadReport, RunSpec};
use crate::ProducerError;
use gavel_domain::auction::AuctionCommand;
use jsonwebtoken::{encode, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;

/// Tokens are minted once per user and live longer than any run.
const TOKEN_LIFETIME_SECS: u64 = 24 * 3600;

pub struct HttpTarget {
    /// e.g. `http://127.0.0.1:8090`
    pub url: String,
    pub jwt_secret: String,
}

pub async fn run(
    target: &HttpTarget,
    spec: &RunSpec,
    accepted: AcceptedSink,
) -> Result<LoadReport, ProducerError> {
    let connections = spec.concurrency.max(1);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        // The API closes a keep-alive connection idle for its header timeout
        // (GAVEL_HTTP_HEADER_TIMEOUT_MS, 5 s by default); drop ours first, so
        // no request is sent on a connection the server is closing.
        .pool_idle_timeout(std::time::Duration::from_secs(2))
        .timeout(spec.outcome_timeout)
        .build()
        .map_err(|e| ProducerError::Load(format!("http client: {e}")))?;
    let tally = Arc::new(Tally::new(spec.commands, accepted));
    let mut dispatcher = HttpDispatch {
        client,
        base: target.url.trim_end_matches('/').to_owned(),
        key: EncodingKey::from_secret(target.jwt_secret.as_bytes()),
        tenant: spec.tenant.clone(),
        tokens: HashMap::new(),
        tally: Arc::clone(&tally),
        connections: Arc::new(Semaphore::new(connections)),
        flat_out: spec.rate <= 0.0,
    };
    drive(spec, "http", &tally, &mut dispatcher).await
}

struct HttpDispatch {
    client: reqwest::Client,
    base: String,
    key: EncodingKey,
    tenant: String,
    tokens: HashMap<String, Arc<str>>,
    tally: Arc<Tally>,
    connections: Arc<Semaphore>,
    flat_out: bool,
}

impl HttpDispatch {
    fn token(&mut self, user: &str) -> Result<Arc<str>, ProducerError> {
        if let Some(token) = self.tokens.get(user) {
            return Ok(Arc::clone(token));
        }
        let claims = json!({
            "sub": user,
            "tenant": self.tenant,
            "exp": jsonwebtoken::get_current_timestamp() + TOKEN_LIFETIME_SECS,
        });
        let token: Arc<str> = encode(&Header::default(), &claims, &self.key)
            .map_err(|e| ProducerError::Load(format!("minting a token: {e}")))?
            .into();
        self.tokens.insert(user.to_owned(), Arc::clone(&token));
        Ok(token)
    }
}

impl Dispatch for HttpDispatch {
    async fn dispatch(&mut self, planned: Planned, due: Instant) -> Result<(), ProducerError> {
        let token = self.token(planned.user.as_str())?;
        let Some((path, body)) = request(&planned.command) else {
            self.tally.complete(
                due,
                Completion::Error("the command API has no route for this command".into()),
            );
            return Ok(());
        };
        let request = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&*token)
            .header("Idempotency-Key", uuid::Uuid::now_v7().to_string())
            .json(&body);
        let tally = Arc::clone(&self.tally);
        let connections = Arc::clone(&self.connections);
        // Flat out, the sender waits for a free connection and the command is
        // due once it has one; on a schedule, the wait is part of the latency.
        let (permit, due) = if self.flat_out {
            let permit = Arc::clone(&connections)
                .acquire_owned()
                .await
                .map_err(|e| ProducerError::Load(e.to_string()))?;
            (Some(permit), Instant::now())
        } else {
            (None, due)
        };
        let aggregate_id = planned.command.auction_id().as_str().to_owned();
        tokio::spawn(async move {
            let _permit = match permit {
                Some(permit) => Ok(permit),
                None => connections.acquire_owned().await,
            };
            let completion = match request.send().await {
                Ok(response) => classify(response, aggregate_id).await,
                Err(e) if e.is_timeout() => Completion::TimedOut,
                Err(e) => Completion::Error(e.to_string()),
            };
            tally.complete(due, completion);
        });
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), ProducerError> {
        Ok(())
    }
}

/// The route and JSON body of a command (amounts in minor units); None for
/// EndAuction, which only the aggregate's timers issue (the API has no route).
fn request(command: &AuctionCommand) -> Option<(String, Value)> {
    Some(match command {
        AuctionCommand::Create(c) => (
            "/auctions".into(),
            json!({
                "auction_id": c.auction_id.as_str(),
                "title": c.title,
                "currency": c.starting_price.currency().as_str(),
                "starting_price": c.starting_price.minor(),
                "min_increment": c.min_increment.minor(),
                "reserve_price": c.reserve_price.map(|m| m.minor()),
                "end_time": c.end_time.millis(),
            }),
        ),
        AuctionCommand::Start(c) => (
            format!("/auctions/{}/start", c.auction_id.as_str()),
            json!({}),
        ),
        AuctionCommand::PlaceBid(c) => (
            format!("/auctions/{}/bids", c.auction_id.as_str()),
            json!({"amount": c.amount.minor(), "currency": c.amount.currency().as_str()}),
        ),
        AuctionCommand::Cancel(c) => (
            format!("/auctions/{}/cancel", c.auction_id.as_str()),
            json!({"reason": c.reason}),
        ),
        AuctionCommand::End(_) => return None,
    })
}

async fn classify(response: reqwest::Response, aggregate_id: String) -> Completion {
    match response.status() {
        StatusCode::OK | StatusCode::CREATED => {
            let body: Value = response.json().await.unwrap_or(Value::Null);
            match body.get("new_version").and_then(Value::as_u64) {
                Some(version) => Completion::Accepted {
                    aggregate_id,
                    version,
                },
                None => Completion::Error("a 2xx answer without new_version".into()),
            }
        }
        StatusCode::CONFLICT | StatusCode::NOT_FOUND | StatusCode::UNPROCESSABLE_ENTITY => {
            Completion::Rejected
        }
        StatusCode::ACCEPTED => Completion::Pending,
        StatusCode::REQUEST_TIMEOUT => Completion::TimedOut,
        status => Completion::Error(format!("HTTP {status}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::traffic::{Traffic, TrafficSpec};
    use gavel_domain::Timestamp;

    #[test]
    fn commands_map_to_the_command_api_routes() {
        let spec = TrafficSpec {
            run_id: "h".into(),
            auctions: 1,
            users: 5,
            zipf_s: 1.0,
            seed: 1,
            planned_ms: 10_000,
            margin_ms: 1_000,
        };
        let mut traffic = Traffic::new(spec, Timestamp::from_millis(5_000)).unwrap();
        let (path, body) = request(&traffic.command(0, 0.0).command).unwrap();
        assert_eq!(path, "/auctions");
        assert_eq!(body["auction_id"], "h-lot-0");
        assert_eq!(body["currency"], "EUR");
        assert!(body["end_time"].as_i64().unwrap() > 5_000);
        let (path, _) = request(&traffic.command(1, 0.0).command).unwrap();
        assert_eq!(path, "/auctions/h-lot-0/start");
        let (path, body) = request(&traffic.command(2, 0.0).command).unwrap();
        assert_eq!(path, "/auctions/h-lot-0/bids");
        assert!(body["amount"].as_i64().unwrap() > 0);
    }
}
