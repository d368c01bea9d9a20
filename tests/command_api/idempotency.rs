//! Idempotency-Key bound to its request: a retry of the same request gets the
//! original answer and causes nothing new (also from another replica, also
//! after a restart); the key on another request is a 422 with the reason.

use crate::client::{record_count, token, Api};
use crate::common::TestEnv;
use crate::{active_auction, create_body};
use serde_json::json;
use std::time::Duration;

const BIDS: &str = "/auctions/idem-1/bids";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_is_bound_to_its_request_and_its_answer_is_replayed_by_any_replica() {
    let env = TestEnv::with_workers(3).await;
    let api = Api::start(&env, Duration::from_secs(10)).await;
    active_auction(&api, "idem-1", "sam", "t1").await;
    active_auction(&api, "idem-2", "sam", "t1").await;
    let ann = token("ann", "t1");
    let (commands, events) = (&env.config.topics.commands, &env.config.topics.events);
    let bid = json!({"amount": 10_000, "currency": "EUR"}).to_string();
    let first = api.post(BIDS, Some(&ann), Some("bid-1"), &bid).await;
    assert_eq!(
        (first.status, first.replayed),
        (200, false),
        "{}",
        first.body
    );
    let sent = record_count(&env.config, commands);
    let written = env.read_topic(events, 6, Duration::from_secs(5)).len();
    assert_eq!(written, 5, "two auctions created and started, one bid");

    // The same request again, members in another order: the first answer,
    // from the key's record, with nothing produced.
    let reordered = json!({"currency": "EUR", "amount": 10_000}).to_string();
    let again = api.post(BIDS, Some(&ann), Some("bid-1"), &reordered).await;
    assert_eq!((again.status, &again.body), (first.status, &first.body));
    assert!(again.replayed);

    // The same key on another request: 422 naming what differs.
    let higher = json!({"amount": 90_000, "currency": "EUR"}).to_string();
    for (path, body, why) in [
        (BIDS, higher.as_str(), "another body"),
        ("/auctions/idem-2/bids", bid.as_str(), "idem-1"),
        ("/auctions/idem-1/cancel", "", "POST /auctions/{id}/bids"),
        (
            "/auctions",
            &create_body("idem-3") as &str,
            "POST /auctions/{id}/bids",
        ),
    ] {
        let refused = api.post(path, Some(&ann), Some("bid-1"), body).await;
        assert_eq!(refused.status, 422, "{path}: {}", refused.body);
        let reason = refused.body["error"].as_str().expect("reason");
        assert!(reason.contains(why), "{path}: {reason}");
    }
    assert_eq!(record_count(&env.config, commands), sent, "nothing sent");

    // Another user's key of the same name is a key of its own.
    let bob = token("bob", "t1");
    let bobs = json!({"amount": 10_500, "currency": "EUR"}).to_string();
    let own = api.post(BIDS, Some(&bob), Some("bid-1"), &bobs).await;
    assert_eq!((own.status, own.replayed), (200, false), "{}", own.body);

    // A restarted API and a second replica know the key (Postgres, shared).
    api.stop().await;
    let (restarted, replica) = (
        Api::start(&env, Duration::from_secs(10)).await,
        Api::start(&env, Duration::from_secs(10)).await,
    );
    let sent = record_count(&env.config, commands);
    for api in [&restarted, &replica] {
        let retried = api.post(BIDS, Some(&ann), Some("bid-1"), &bid).await;
        assert_eq!((retried.status, &retried.body), (first.status, &first.body));
        assert!(retried.replayed);
        let other = api.post(BIDS, Some(&ann), Some("bid-1"), &higher).await;
        assert_eq!(other.status, 422);
    }
    assert_eq!(record_count(&env.config, commands), sent);
    let written = env.read_topic(events, 8, Duration::from_secs(5)).len();
    assert_eq!(written, 6, "ann's bid once, bob's bid once");
    // Every answer above was counted by route template and status.
    let metrics = gavel_runtime::observe::metrics::render();
    for status in ["200", "422"] {
        let series = format!(
            r#"gavel_command_api_requests_total{{route="/auctions/{{id}}/bids",status="{status}"}}"#
        );
        assert!(metrics.contains(&series), "{series} missing");
    }
    restarted.stop().await;
    replica.stop().await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_auction_without_an_id_is_created_once_per_key() {
    let env = TestEnv::with_workers(2).await;
    let api = Api::start(&env, Duration::from_secs(10)).await;
    let sam = token("sam", "t1");
    let body = json!({"title": "Untitled", "currency": "EUR", "starting_price": 100,
                      "min_increment": 10, "ends_in_secs": 600})
    .to_string();
    let first = api
        .post("/auctions", Some(&sam), Some("new-1"), &body)
        .await;
    let first = api.settle(first, &sam).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let id = first.body["aggregate_id"]
        .as_str()
        .expect("auction id")
        .to_owned();
    assert!(id.starts_with("auc-"), "{id}");
    // A second replica, as a load balancer may pick on retry.
    let replica = Api::start(&env, Duration::from_secs(10)).await;
    let retried = replica
        .post("/auctions", Some(&sam), Some("new-1"), &body)
        .await;
    assert_eq!((retried.status, &retried.body), (201, &first.body));
    // A different key is another auction.
    let other = api
        .post("/auctions", Some(&sam), Some("new-2"), &body)
        .await;
    let other = api.settle(other, &sam).await;
    assert_ne!(other.body["aggregate_id"], first.body["aggregate_id"]);
    // The same key with another body: refused, nothing created.
    let changed = body.replace("Untitled", "Retitled");
    let refused = api
        .post("/auctions", Some(&sam), Some("new-1"), &changed)
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    let created = env.read_topic(&env.config.topics.events, 3, Duration::from_secs(5));
    assert_eq!(created.len(), 2, "one auction per key");
    api.stop().await;
    replica.stop().await;
    env.stop().await;
}
