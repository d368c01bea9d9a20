//! The command API against the real stack: a real HTTP client on an ephemeral
//! port, commands through Kafka to the aggregate processor, answers from the
//! outcome topic.

#[path = "../common/mod.rs"]
mod common;

mod client;
mod idempotency;
mod orders;

use client::{record_count, token, token_with, Api, SECRET};
use common::TestEnv;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

pub(crate) fn create_body(id: &str) -> String {
    json!({"auction_id": id, "title": "Bronze Hare", "currency": "EUR",
           "starting_price": 10_000, "min_increment": 500, "ends_in_secs": 600})
    .to_string()
}

/// Creates and starts `id` as `seller` through the API.
pub(crate) async fn active_auction(api: &Api, id: &str, seller: &str, tenant: &str) {
    let seller = token(seller, tenant);
    let created = api
        .post("/auctions", Some(&seller), None, &create_body(id))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["new_version"], 1);
    assert_eq!(created.body["aggregate_id"], id);
    let path = format!("/auctions/{id}/start");
    let started = api.post(&path, Some(&seller), None, "").await;
    assert_eq!(started.status, 200, "{}", started.body);
    assert_eq!(started.body["new_version"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_bids_get_one_winner_and_each_client_its_own_answer_also_on_retry() {
    let env = TestEnv::with_workers(3).await;
    let api = Api::start(&env, Duration::from_secs(10)).await;
    active_auction(&api, "race-1", "sam", "t1").await;

    // 20 clients bid the same amount at once: the first decided wins, every
    // other is below current price + increment.
    let bid = json!({"amount": 10_000, "currency": "EUR"}).to_string();
    let clients = (0..20).map(|i| {
        let (api, bid) = (&api, bid.clone());
        async move {
            let (user, key) = (format!("bidder-{i}"), format!("bid-{i}"));
            let reply = api
                .post(
                    "/auctions/race-1/bids",
                    Some(&token(&user, "t1")),
                    Some(&key),
                    &bid,
                )
                .await;
            (user, key, reply)
        }
    });
    let replies = futures::future::join_all(clients).await;
    let winners: Vec<_> = replies.iter().filter(|(_, _, r)| r.status == 200).collect();
    assert_eq!(winners.len(), 1, "exactly one bid wins");
    assert_eq!(winners[0].2.body["new_version"], 3);
    for (_, _, reply) in replies.iter().filter(|(_, _, r)| r.status != 200) {
        assert_eq!(reply.status, 409, "{}", reply.body);
        assert_eq!(reply.body["rejection_code"], "BID_TOO_LOW");
    }
    // Each answer is its own command's: ids distinct, and what the aggregate
    // wrote to the outcome topic for that id is what the client was told.
    let ids: HashSet<&str> = replies
        .iter()
        .map(|(_, _, r)| r.body["command_id"].as_str().expect("command id"))
        .collect();
    assert_eq!(ids.len(), 20);
    let outcomes: HashMap<String, bool> = env
        .outcomes(22, Duration::from_secs(30))
        .await
        .into_iter()
        .map(|o| (o.command_id, o.accepted))
        .collect();
    for (_, _, reply) in &replies {
        let id = reply.body["command_id"].as_str().expect("command id");
        assert_eq!(outcomes.get(id), Some(&(reply.status == 200)), "{id}");
    }

    // Retries with the same key get the same answer and add no event.
    let events_before = env.read_topic(&env.config.topics.events, 4, Duration::from_secs(5));
    assert_eq!(events_before.len(), 3, "created, started, one bid");
    let (winner, winner_key, first) = winners[0];
    let loser = replies
        .iter()
        .find(|(_, _, r)| r.status == 409)
        .expect("a loser");
    for (user, key, original) in [(winner, winner_key, first), (&loser.0, &loser.1, &loser.2)] {
        let again = api
            .post(
                "/auctions/race-1/bids",
                Some(&token(user, "t1")),
                Some(key),
                &bid,
            )
            .await;
        assert_eq!(
            (again.status, &again.body),
            (original.status, &original.body)
        );
    }
    let events_after = env.read_topic(&env.config.topics.events, 4, Duration::from_secs(5));
    assert_eq!(events_after.len(), 3, "retries produced no event");

    // The outcome is also there to poll, for the user who sent it only: not
    // for the same name in another tenant, not for another user of its own.
    let path = format!(
        "/commands/{}",
        first.body["command_id"].as_str().expect("id")
    );
    let polled = api.get(&path, &token(winner, "t1")).await;
    assert_eq!((polled.status, &polled.body), (200, &first.body));
    assert_eq!(api.get(&path, &token(winner, "t2")).await.status, 404);
    let other_user = api.get(&path, &token("someone-else", "t1")).await;
    assert_eq!(other_user.status, 404, "{}", other_user.body);

    // A stale expected_version is a conflict.
    let stale = json!({"amount": 20_000, "currency": "EUR", "expected_version": 2}).to_string();
    let conflict = api
        .post(
            "/auctions/race-1/bids",
            Some(&token("late", "t1")),
            None,
            &stale,
        )
        .await;
    assert_eq!(conflict.status, 409);
    assert_eq!(conflict.body["rejection_code"], "VERSION_CONFLICT");
    api.stop().await;
    env.stop().await;
}

/// PlaceBid v2 over HTTP: a proxy bid answers a challenger within the
/// challenger's own command (two events, one outcome).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_proxy_bid_answers_a_challenger_in_the_same_command() {
    let env = TestEnv::with_workers(1).await;
    let api = Api::start(&env, Duration::from_secs(10)).await;
    active_auction(&api, "proxy-1", "sam", "t1").await;
    let path = "/auctions/proxy-1/bids";
    let proxy = json!({"amount": 10_000, "currency": "EUR", "max_amount": 30_000});
    let placed = api
        .post(path, Some(&token("ann", "t1")), None, &proxy.to_string())
        .await;
    assert_eq!(placed.status, 200, "{}", placed.body);
    assert_eq!(placed.body["new_version"], 3);
    let challenge = json!({"amount": 12_000, "currency": "EUR"}).to_string();
    let answered = api
        .post(path, Some(&token("bob", "t1")), None, &challenge)
        .await;
    assert_eq!(answered.status, 200, "{}", answered.body);
    assert_eq!(
        answered.body["new_version"], 5,
        "bob's bid and ann's answer"
    );
    let next = json!({"amount": 12_000, "currency": "EUR"}).to_string();
    let too_low = api.post(path, Some(&token("cy", "t1")), None, &next).await;
    assert_eq!(
        too_low.status, 409,
        "ann's answer raised the price: {}",
        too_low.body
    );
    assert_eq!(too_low.body["rejection_code"], "BID_TOO_LOW");
    api.stop().await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refused_requests_get_their_status_and_produce_nothing() {
    let env = TestEnv::with_workers(3).await;
    let api = Api::start(&env, Duration::from_secs(10)).await;
    active_auction(&api, "lot-1", "sam", "t1").await;
    let commands = &env.config.topics.commands;
    let before = record_count(&env.config, commands);
    let path = "/auctions/lot-1/bids";
    let bid = json!({"amount": 10_000, "currency": "EUR"}).to_string();
    let ann = token("ann", "t1");

    let unauthorized = [
        (None, "missing"),
        (Some(token_with(SECRET, "ann", "t1", -600)), "expired"),
        (
            Some(token_with("forged-key", "ann", "t1", 600)),
            "signature",
        ),
        (Some("not.a.jwt".to_owned()), "malformed"),
    ];
    for (credential, reason) in unauthorized {
        let reply = api.post(path, credential.as_deref(), None, &bid).await;
        assert_eq!(reply.status, 401, "{reason}: {}", reply.body);
        let error = reply.body["error"].as_str().expect("error text");
        assert!(error.contains(reason), "{reason}: {error}");
    }

    let as_bob = json!({"amount": 10_000, "currency": "EUR", "bidder_id": "bob"}).to_string();
    let forbidden = api.post(path, Some(&ann), None, &as_bob).await;
    assert_eq!(forbidden.status, 403, "{}", forbidden.body);

    let huge = json!({"amount": 10_000, "currency": "EUR", "note": "x".repeat(20_000)});
    let too_large = api.post(path, Some(&ann), None, &huge.to_string()).await;
    assert_eq!(too_large.status, 413, "{}", too_large.body);

    let malformed = api
        .post(path, Some(&ann), None, r#"{"amount": 10000,"#)
        .await;
    assert_eq!(malformed.status, 400);
    let reason = malformed.body["error"].as_str().expect("error text");
    assert!(
        reason.contains("malformed JSON") && reason.contains("line 1"),
        "{reason}"
    );

    let invalid = json!({"amount": 0, "currency": "euro"}).to_string();
    let unprocessable = api.post(path, Some(&ann), None, &invalid).await;
    assert_eq!(unprocessable.status, 422, "{}", unprocessable.body);
    assert_eq!(unprocessable.body["fields"]["amount"], "must be > 0");
    assert!(unprocessable.body["fields"]["currency"].is_string());

    let below = json!({"amount": 10_000, "currency": "EUR", "max_amount": 9_000}).to_string();
    let below = api.post(path, Some(&ann), None, &below).await;
    assert_eq!(below.status, 422, "{}", below.body);
    assert_eq!(
        below.body["fields"]["max_amount"],
        "must not be below amount"
    );

    let bad_key = api
        .post(path, Some(&ann), Some(&"k".repeat(129)), &bid)
        .await;
    assert_eq!(bad_key.status, 400, "{}", bad_key.body);

    let no_create = api
        .post("/auctions", Some(&ann), None, r#"{"title": ""}"#)
        .await;
    assert_eq!(no_create.status, 422);
    for field in [
        "title",
        "currency",
        "starting_price",
        "min_increment",
        "ends_in_secs",
    ] {
        assert!(
            no_create.body["fields"][field].is_string(),
            "{field}: {}",
            no_create.body
        );
    }
    assert_eq!(
        record_count(&env.config, commands),
        before,
        "refused requests produced nothing"
    );

    // Another tenant's auction: the aggregate refuses it; the API says 404
    // without confirming the auction exists, and no event is written.
    let events = &env.config.topics.events;
    let intruder = api.post(path, Some(&token("eve", "t2")), None, &bid).await;
    assert_eq!(intruder.status, 404, "{}", intruder.body);
    assert_eq!(intruder.body["rejection_code"], "AUCTION_NOT_FOUND");
    assert_eq!(
        env.read_topic(events, 3, Duration::from_secs(5)).len(),
        2,
        "created and started only"
    );
    let cancelled = api
        .post(
            "/auctions/lot-1/cancel",
            Some(&token("sam", "t1")),
            None,
            "",
        )
        .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    assert_eq!(cancelled.body["new_version"], 3);
    api.stop().await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_undecided_command_gets_202_and_its_outcome_can_be_polled() {
    // No aggregate yet: nothing decides, so the request times out into a 202.
    let mut env = TestEnv::new(3).await;
    let api = Api::start(&env, Duration::from_millis(300)).await;
    let sam = token("sam", "t1");
    let pending = api
        .post("/auctions", Some(&sam), None, &create_body("slow-1"))
        .await;
    assert_eq!(pending.status, 202, "{}", pending.body);
    let location = pending.location.clone().expect("Location header");
    let command_id = pending.body["command_id"].as_str().expect("command id");
    assert_eq!(location, format!("/commands/{command_id}"));
    let unknown = api.get(&location, &sam).await;
    assert_eq!(unknown.status, 404);
    assert!(unknown.body["error"]
        .as_str()
        .expect("text")
        .contains("pending"));

    env.start_aggregate();
    let decided = api.settle(pending, &sam).await;
    assert_eq!(decided.status, 201, "{}", decided.body);
    assert_eq!(decided.body["new_version"], 1);
    assert_eq!(decided.body["aggregate_id"], "slow-1");
    // Without an auction id in the body, the API names the auction.
    let body = json!({"title": "Untitled", "currency": "EUR", "starting_price": 100,
                      "min_increment": 10, "ends_in_secs": 60});
    // (Still a 300 ms wait: on a busy machine the answer may come by polling.)
    let generated = api
        .post("/auctions", Some(&sam), None, &body.to_string())
        .await;
    let generated = api.settle(generated, &sam).await;
    assert_eq!(generated.status, 201, "{}", generated.body);
    let id = generated.body["aggregate_id"].as_str().expect("auction id");
    assert!(id.starts_with("auc-"), "{id}");
    api.stop().await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_drains_a_request_in_flight() {
    // No aggregate: the request is still waiting for its outcome when the
    // server is told to stop; it must get its 202, not a dropped connection.
    let env = TestEnv::new(3).await;
    let api = Api::start(&env, Duration::from_secs(2)).await;
    let request = api
        .http
        .post(format!("{}/auctions", api.base))
        .bearer_auth(token("sam", "t1"))
        .body(create_body("drain-1"));
    let in_flight = tokio::spawn(async move { request.send().await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    api.stop().await;
    let response = in_flight
        .await
        .expect("task")
        .expect("answered, not dropped");
    assert_eq!(response.status().as_u16(), 202);
    env.stop().await;
}
