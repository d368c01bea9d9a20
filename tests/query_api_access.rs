//! Who may read what through the query API: a valid token on every data
//! route, the tenant taken from it, a user's bids for that user or an
//! operator only, caps on open live streams, and signed, bounded cursors.

mod common;

use common::api::{bid, create_and_start, produce, Api};
use common::tokens::{claims, hs256};
use common::{eventually, TestEnv};
use gavel_http::signing::Signer;
use gavel_producers::produce::now;
use serde_json::Value;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);
const CURSOR_KEY: &str = "cursor-key-shared-by-every-replica!!";

/// `GET` with explicit headers (or none), for what `Api::get` cannot send.
async fn get_with(api: &Api, path: &str, headers: &[(&str, &str)]) -> (u16, Value, bool) {
    let mut request = api.http.get(format!("{}{path}", api.base));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let challenge = response.headers().contains_key("www-authenticate");
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body, challenge)
}

fn reason(body: &Value) -> &str {
    body["error"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_data_route_needs_a_token_and_serves_only_its_tenant_and_user() {
    let env = TestEnv::with_workers(2).await;
    let far = now().millis() + 600_000;
    let lines = create_and_start("acc-1", far, 1_000, true)
        + &bid("acc-1", "ann", 1_000)
        + "\n"
        + &bid("acc-1", "bob", 1_100)
        + "\n";
    produce(&env, "t-a", &lines).await;
    produce(&env, "t-b", &create_and_start("acc-2", far, 500, true)).await;
    let api = Api::start(&env).await;
    let (ann, bob) = (api.token("t-a", "ann"), api.token("t-a", "bob"));
    let seen = eventually(TIMEOUT, || async {
        let (_, body) = api.get("/auctions/acc-1", Some(&ann)).await;
        (body["bid_count"] == 2).then_some(())
    })
    .await;
    assert!(seen.is_some(), "acc-1 with two bids in the read model");

    let expired = hs256(&env.config, &claims("ann", "t-a", &[], -600));
    let forged = {
        let mut other = env.config.clone();
        other.jwt_secret = gavel_runtime::config::Secret::new("x".repeat(40));
        hs256(&other, &claims("ann", "t-a", &[], 600))
    };
    let too_long = hs256(&env.config, &claims("ann", "t-a", &[], 10 * 24 * 3600));
    for path in [
        "/auctions",
        "/auctions/acc-1",
        "/auctions/acc-1/live",
        "/users/ann/bids",
    ] {
        // The old way: a tenant header and no credentials.
        let (status, body, challenge) = get_with(&api, path, &[("X-Tenant-Id", "t-a")]).await;
        assert_eq!((status, challenge), (401, true), "{path}: {body}");
        assert!(reason(&body).contains("Authorization"), "{path}: {body}");
        for (token, why) in [
            (&expired, "expired"),
            (&forged, "signature"),
            (&too_long, "lifetime"),
        ] {
            let bearer = format!("Bearer {token}");
            let (status, body, _) = get_with(&api, path, &[("Authorization", &bearer)]).await;
            assert_eq!(status, 401, "{path} {why}: {body}");
            assert!(reason(&body).contains(why), "{path}: {body}");
        }
        let bearer = format!("Bearer {ann}");
        let headers = [("Authorization", bearer.as_str()), ("X-Tenant-Id", "t-b")];
        let (status, body, _) = get_with(&api, path, &headers).await;
        assert_eq!(
            status, 403,
            "{path}: a tenant header against the token: {body}"
        );
    }

    // The tenant is the token's: t-b's auction is not there for t-a, and
    // t-b's own token sees it without any header.
    assert_eq!(api.get("/auctions/acc-2", Some(&ann)).await.0, 404);
    let t_b = api.token("t-b", "carl");
    assert_eq!(api.get("/auctions/acc-2", Some(&t_b)).await.0, 200);
    let (_, listed) = api.get("/auctions", Some(&t_b)).await;
    let ids: Vec<&str> = listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["auction_id"].as_str())
        .collect();
    assert_eq!(ids, ["acc-2"]);

    // A user's bids: that user, or an operator of the tenant.
    let (status, own) = api.get("/users/ann/bids", Some(&ann)).await;
    assert_eq!(
        (status, own["items"][0]["auction_id"].as_str()),
        (200, Some("acc-1"))
    );
    let (status, body) = api.get("/users/ann/bids", Some(&bob)).await;
    assert_eq!(status, 403, "bob reads ann's bids: {body}");
    assert!(reason(&body).contains("only its own"), "{body}");
    let operator = api.operator("t-a", "ops");
    let (status, body) = api.get("/users/ann/bids", Some(&operator)).await;
    assert_eq!(
        (status, body["items"].as_array().map(Vec::len)),
        (200, Some(1))
    );
    let other_operator = api.operator("t-b", "ops");
    let (status, body) = api.get("/users/ann/bids", Some(&other_operator)).await;
    assert_eq!(
        (status, body["items"].as_array().map(Vec::len)),
        (200, Some(0))
    );
    // Probes stay open.
    assert_eq!(api.get_text("/readyz").await.0, 200);
    api.stop().await;
    env.stop().await;
}

/// Opens a live stream; the response is kept open by holding it.
async fn open_stream(api: &Api, token: &str) -> reqwest::Response {
    api.http
        .get(format!("{}/auctions/cap-1/live", api.base))
        .bearer_auth(token)
        .send()
        .await
        .expect("live request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_streams_are_capped_per_user_and_per_client_address() {
    let env = TestEnv::with_workers(1).await;
    produce(
        &env,
        "t-a",
        &create_and_start("cap-1", now().millis() + 600_000, 100, true),
    )
    .await;
    let api = Api::start_with(
        &env,
        &[
            ("GAVEL_QUERY_MAX_STREAMS_PER_USER", "2"),
            ("GAVEL_HTTP_MAX_STREAMS_PER_CLIENT", "3"),
        ],
    )
    .await;
    let tokens: Vec<String> = ["ann", "bob", "carl"]
        .iter()
        .map(|user| api.token("t-a", user))
        .collect();
    let seen = eventually(TIMEOUT, || async {
        (api.get("/auctions/cap-1", Some(&tokens[0])).await.0 == 200).then_some(())
    })
    .await;
    assert!(seen.is_some(), "cap-1 in the read model");

    let first = open_stream(&api, &tokens[0]).await;
    let second = open_stream(&api, &tokens[0]).await;
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    let third = open_stream(&api, &tokens[0]).await;
    assert_eq!(third.status(), 429, "a user's third stream");
    let body: Value = third.json().await.expect("JSON");
    assert!(reason(&body).contains("this user"), "{body}");
    let bobs = open_stream(&api, &tokens[1]).await;
    assert_eq!(bobs.status(), 200, "another user from the same address");
    let carls = open_stream(&api, &tokens[2]).await;
    assert_eq!(carls.status(), 429, "the address holds 3 streams");
    let body: Value = carls.json().await.expect("JSON");
    assert!(reason(&body).contains("client address"), "{body}");

    // A closed stream gives its slot back.
    drop(first);
    let again = eventually(Duration::from_secs(45), || async {
        let reopened = open_stream(&api, &tokens[0]).await;
        (reopened.status() == 200).then_some(reopened)
    })
    .await;
    assert!(again.is_some(), "ann opens a stream again once one closed");
    drop((second, bobs, again));
    api.stop().await;
    env.stop().await;
}

/// A cursor as the API seals it, signed with `key`.
fn sealed(key: &str, plain: &str) -> String {
    let tag = Signer::new(key.as_bytes()).sign(plain.as_bytes());
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    format!("{}.{}", hex(plain.as_bytes()), hex(&tag))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cursors_are_signed_bounded_and_accepted_by_every_replica() {
    let env = TestEnv::with_workers(2).await;
    let far = now().millis() + 600_000;
    let mut lines = String::new();
    for i in 0..5 {
        let id = format!("cur-{i}");
        lines += &create_and_start(&id, far + i * 1_000, 100, true);
        lines += &bid(&id, "ann", 100);
        lines.push('\n');
    }
    produce(&env, "t-a", &lines).await;
    let key = [("GAVEL_QUERY_CURSOR_KEY", CURSOR_KEY)];
    let (api, replica) = (
        Api::start_with(&env, &key).await,
        Api::start_with(&env, &key).await,
    );
    let ann = api.token("t-a", "ann");
    let ready = eventually(TIMEOUT, || async {
        let (_, body) = api.get("/users/ann/bids", Some(&ann)).await;
        (body["items"].as_array()?.len() == 5).then_some(())
    })
    .await;
    assert!(ready.is_some(), "ann's five bids in the read model");

    for listing in ["/auctions?limit=2", "/users/ann/bids?limit=2"] {
        let (_, first) = api.get(listing, Some(&ann)).await;
        let cursor = first["next_cursor"]
            .as_str()
            .expect("a next page")
            .to_owned();
        // Another replica with the same key continues the page.
        let next = format!("{listing}&cursor={cursor}");
        let (status, body) = replica.get(&next, Some(&ann)).await;
        assert_eq!(
            (status, body["items"].as_array().map(Vec::len)),
            (200, Some(2))
        );
        // One flipped character of the signed part: refused.
        let mut tampered = cursor.clone().into_bytes();
        tampered[2] = if tampered[2] == b'0' { b'1' } else { b'0' };
        let tampered = String::from_utf8(tampered).expect("hex");
        let long = "ab".repeat(700);
        let unsigned = cursor.split('.').next().expect("plain part").to_owned();
        let foreign = sealed(
            "some-other-key-that-is-long-enough!",
            "v1|ACTIVE|end_time|asc|1|x",
        );
        for (bad, why) in [
            (tampered.as_str(), "altered"),
            (unsigned.as_str(), "not valid"),
            (foreign.as_str(), "altered"),
            (long.as_str(), "longer than"),
        ] {
            let (status, body) = api
                .get(&format!("{listing}&cursor={bad}"), Some(&ann))
                .await;
            assert_eq!(status, 400, "{listing} {why}: {body}");
            assert!(reason(&body).contains(why), "{listing} {why}: {body}");
        }
    }
    // Signed with the right key but holding instants Postgres cannot
    // compute: a 400 naming the cursor, never a 500.
    for (listing, plain) in [
        (
            "/auctions?limit=2",
            "v1|ACTIVE|end_time|asc|9223372036854775807|cur-1",
        ),
        (
            "/auctions?limit=2",
            "v1|ACTIVE|end_time|asc|-9223372036854775808|cur-1",
        ),
        (
            "/users/ann/bids?limit=2",
            "v1|bids|ANY|ann|10000000000000000|cur-1",
        ),
    ] {
        let path = format!("{listing}&cursor={}", sealed(CURSOR_KEY, plain));
        let (status, body) = api.get(&path, Some(&ann)).await;
        assert_eq!(status, 400, "{plain}: {body}");
        assert!(reason(&body).contains("out of range"), "{plain}: {body}");
    }
    // A replica with another key refuses the first one's cursors.
    let stranger = Api::start_with(
        &env,
        &[(
            "GAVEL_QUERY_CURSOR_KEY",
            "another-replica-key-of-32-bytes!!!!",
        )],
    )
    .await;
    let (_, first) = api.get("/auctions?limit=2", Some(&ann)).await;
    let cursor = first["next_cursor"].as_str().expect("cursor");
    let (status, _) = stranger
        .get(&format!("/auctions?limit=2&cursor={cursor}"), Some(&ann))
        .await;
    assert_eq!(status, 400);
    for api in [api, replica, stranger] {
        api.stop().await;
    }
    env.stop().await;
}
