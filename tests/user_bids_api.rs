//! A user's bids through the query API: each auction once, newest bid first,
//! with the highest own bid and the standing, tenant-scoped and paginated.
//! (WON and LOST rows are checked by the end-to-end tests, which compare
//! user_bids with the auctions' final details.)

mod common;

use common::api::{bid, create_and_start, produce, Api};
use common::{eventually, TestEnv};
use gavel_producers::produce::now;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_users_bids_show_each_auction_once_with_the_highest_bid_and_standing() {
    let env = TestEnv::with_workers(3).await;
    let far = now().millis() + 600_000;
    let mut lines = create_and_start("ub-1", far, 1_000, true);
    for (bidder, amount) in [("ann", 1_000), ("bob", 1_100), ("ann", 1_200)] {
        lines += &bid("ub-1", bidder, amount);
        lines.push('\n');
    }
    produce(&env, "t-a", &lines).await;
    let other = create_and_start("ub-3", far, 700, true) + &bid("ub-3", "ann", 700) + "\n";
    produce(&env, "t-b", &other).await;

    let api = Api::start(&env).await;
    let (ann_token, bob_token) = (api.token("t-a", "ann"), api.token("t-a", "bob"));
    let ann_in_b = api.token("t-b", "ann");
    // The bid on ub-2 is sent only once bob's bid on ub-1 is visible: the two
    // auctions may sit on different partitions, and only wall-clock order
    // between them makes "newest bid first" a fact the test can rely on.
    let first = eventually(TIMEOUT, || async {
        let (status, body) = api.get("/users/bob/bids", Some(&bob_token)).await;
        (status == 200 && body["items"].as_array()?.len() == 1).then_some(())
    })
    .await;
    assert!(first.is_some(), "bob's bid on ub-1 visible");
    let later = create_and_start("ub-2", far, 500, true) + &bid("ub-2", "bob", 500) + "\n";
    produce(&env, "t-a", &later).await;
    let bob = eventually(TIMEOUT, || async {
        let (status, body) = api.get("/users/bob/bids", Some(&bob_token)).await;
        let items = body["items"].as_array()?.clone();
        let outbid = items.iter().any(|i| i["status"] == "OUTBID");
        (status == 200 && items.len() == 2 && outbid).then_some(items)
    })
    .await
    .expect("bob's two bids, outbid on the first auction");
    assert_eq!(
        (bob[0]["auction_id"].as_str(), bob[0]["status"].as_str()),
        (Some("ub-2"), Some("LEADING")),
        "newest bid first"
    );
    assert_eq!(
        (bob[1]["auction_id"].as_str(), bob[1]["status"].as_str()),
        (Some("ub-1"), Some("OUTBID"))
    );
    let (status, ann) = api.get("/users/ann/bids", Some(&ann_token)).await;
    assert_eq!(status, 200, "{ann}");
    let items = ann["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "ann's bid in tenant t-b stays there: {ann}");
    assert_eq!(items[0]["status"], "LEADING");
    assert_eq!(items[0]["bid_count"], 2);
    assert_eq!(items[0]["highest_bid"]["amount_minor"], 1_200);
    let (_, ann_b) = api.get("/users/ann/bids", Some(&ann_in_b)).await;
    assert_eq!(ann_b["items"][0]["auction_id"], "ub-3");

    let (_, leading) = api
        .get("/users/bob/bids?status=LEADING", Some(&bob_token))
        .await;
    assert_eq!(leading["items"].as_array().map(Vec::len), Some(1));
    let (_, first) = api.get("/users/bob/bids?limit=1", Some(&bob_token)).await;
    let cursor = first["next_cursor"].as_str().expect("a second page");
    let (_, second) = api
        .get(
            &format!("/users/bob/bids?limit=1&cursor={cursor}"),
            Some(&bob_token),
        )
        .await;
    assert_eq!(second["items"][0]["auction_id"], "ub-1");
    assert!(second["next_cursor"].is_null());
    for (query, word) in [
        ("status=WINNING", "status"),
        ("limit=0", "limit"),
        ("sort=price", "unknown parameter"),
        (&format!("status=LEADING&cursor={cursor}") as &str, "cursor"),
    ] {
        let (status, body) = api
            .get(&format!("/users/bob/bids?{query}"), Some(&bob_token))
            .await;
        assert_eq!(status, 400, "{query}: {body}");
        let reason = body["error"].as_str().expect("error reason");
        assert!(reason.contains(word), "{query}: {reason}");
    }
    assert_eq!(api.get("/users/bob/bids", None).await.0, 401);
    assert_eq!(api.get("/users/bob/bids", Some(&ann_token)).await.0, 403);
    api.stop().await;
    env.stop().await;
}
