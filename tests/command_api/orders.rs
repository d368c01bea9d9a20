//! `POST /orders`: the server names the order and prices it from the
//! catalogue; a retried key starts the saga once.

use crate::client::{record_count, token, Api};
use crate::common::TestEnv;
use gavel_runtime::saga_wire::ORDER_CREATED_RECORD;
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_order_posted_twice_with_one_key_starts_one_saga() {
    let env = TestEnv::new(2).await;
    let participants = crate::common::process::Worker::spawn(&env, "participant all", "p0");
    let orchestrator = crate::common::process::Worker::spawn(&env, "saga run order", "s0");
    let api = Api::start(&env, Duration::from_secs(10)).await;
    let carol = token("carol", "t1");
    let body = json!({"lines": [{"sku": "print-a", "quantity": 2}], "total": 8_000,
                      "currency": "EUR", "shipping_address": "1 Gallery Road"})
    .to_string();
    let first = api
        .post("/orders", Some(&carol), Some("order-key-1"), &body)
        .await;
    assert_eq!(first.status, 202, "{}", first.body);
    let retry = api
        .post("/orders", Some(&carol), Some("order-key-1"), &body)
        .await;
    assert_eq!(
        (retry.status, &retry.body),
        (first.status, &first.body),
        "same key, same answer"
    );
    assert!(retry.replayed, "answered from the key's record");
    let other = api.post("/orders", Some(&carol), None, &body).await;
    assert_ne!(other.body["order_id"], first.body["order_id"]);

    let orders = &env.config.topics.orders;
    let before = record_count(&env.config, orders);
    let bad = json!({"lines": [{"sku": "print a", "quantity": 0}, 7], "total": -1,
                     "currency": "euro", "shipping_address": "", "gift": true})
    .to_string();
    let invalid = api.post("/orders", Some(&carol), None, &bad).await;
    assert_eq!(invalid.status, 422, "{}", invalid.body);
    let fields = invalid.body["fields"].as_object().expect("fields");
    for field in [
        "lines[0].sku",
        "lines[0].quantity",
        "lines[1]",
        "total",
        "currency",
        "shipping_address",
        "gift",
    ] {
        assert!(fields.contains_key(field), "{field}: {fields:?}");
    }
    assert_eq!(api.post("/orders", None, None, &body).await.status, 401);
    assert_eq!(
        record_count(&env.config, orders),
        before,
        "nothing produced for refusals"
    );

    let config = env.config.clone();
    let census = crate::common::eventually(Duration::from_secs(60), || {
        let config = config.clone();
        async move {
            let census = tokio::task::spawn_blocking(move || {
                gavel_processors::saga::census(&config, &gavel_processors::saga::kind::Order)
            })
            .await
            .ok()?
            .ok()?;
            let total: i64 = census.values().sum();
            (census.get("COMPLETED") == Some(&2) && total == 2).then_some(census)
        }
    })
    .await;
    assert!(
        census.is_some(),
        "two orders, two completed sagas (the retry started none)"
    );
    api.stop().await;
    orchestrator.stop();
    participants.stop();
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orders_are_named_by_the_server_and_priced_from_the_catalogue() {
    let env = TestEnv::new(1).await;
    let api = Api::start(&env, Duration::from_secs(10)).await;
    let (carol, dave) = (token("carol", "t1"), token("dave", "t2"));
    let lines = json!([{"sku": "sku-0", "quantity": 2}, {"sku": "print-b", "quantity": 1}]);
    let body = json!({"lines": lines, "shipping_address": "1 Gallery Road"}).to_string();
    let carols = api.post("/orders", Some(&carol), Some("k"), &body).await;
    let daves = api.post("/orders", Some(&dave), Some("k"), &body).await;
    assert_eq!(
        (carols.status, daves.status),
        (202, 202),
        "{} {}",
        carols.body,
        daves.body
    );
    assert_ne!(
        carols.body["order_id"], daves.body["order_id"],
        "one key in two tenants names two orders"
    );
    let expected = 2 * 1_500 + 6_500;
    assert_eq!(
        carols.body["total"],
        json!({"amount_minor": expected, "currency": "EUR"})
    );

    let with = |extra: Value| {
        let mut body = json!({"lines": lines, "shipping_address": "1 Gallery Road"});
        for (name, value) in extra.as_object().expect("object") {
            body[name] = value.clone();
        }
        body.to_string()
    };
    let orders = &env.config.topics.orders;
    let before = record_count(&env.config, orders);
    for (body, field, why) in [
        (
            with(json!({"order_id": "mine"})),
            "order_id",
            "chosen by the server",
        ),
        (with(json!({"total": 1})), "total", "9500"),
        (with(json!({"currency": "USD"})), "currency", "EUR"),
        (
            with(json!({"lines": [{"sku": "sku-99", "quantity": 1}]})),
            "lines[0].sku",
            "unknown SKU",
        ),
    ] {
        let refused = api.post("/orders", Some(&carol), None, &body).await;
        assert_eq!(refused.status, 422, "{field}: {}", refused.body);
        let reason = refused.body["fields"][field].as_str().unwrap_or_default();
        assert!(reason.contains(why), "{field}: {}", refused.body);
    }
    // A total the client states rightly is fine; the same key with another body is not.
    let stated = api
        .post(
            "/orders",
            Some(&carol),
            None,
            &with(json!({"total": expected})),
        )
        .await;
    assert_eq!(stated.status, 202, "{}", stated.body);
    let reused = api
        .post(
            "/orders",
            Some(&carol),
            Some("k"),
            &with(json!({"total": expected})),
        )
        .await;
    assert_eq!(reused.status, 422, "{}", reused.body);
    assert_eq!(record_count(&env.config, orders), before + 1);

    // What the saga receives carries the catalogue's total.
    let records = env.read_topic(orders, 3, Duration::from_secs(10));
    assert_eq!(records.len(), 3);
    let payloads: Vec<&[u8]> = records.iter().map(|(_, p)| p.as_slice()).collect();
    let created: Vec<Value> =
        crate::common::wire::decode_all(&env.config, &payloads, ORDER_CREATED_RECORD).await;
    for order in created {
        assert_eq!(order["total"]["minor"], expected, "{order}");
    }
    api.stop().await;
    env.stop().await;
}
