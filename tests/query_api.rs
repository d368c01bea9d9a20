//! The query API against the real stack: the pipeline fills the read model,
//! the API serves it on an ephemeral port, a real HTTP client asks.

mod common;

use common::api::{bid, create_and_start, produce, Api};
use common::{eventually, TestEnv};
use gavel_producers::json_command::parse_line;
use gavel_producers::produce::now;
use gavel_producers::CommandProducer;
use serde_json::Value;
use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const TIMEOUT: Duration = Duration::from_secs(60);

fn sort_key(item: &Value, sort: &str) -> i64 {
    match sort {
        "end_time" => item["end_time_ms"].as_i64(),
        "current_price" => item["current_price"]["amount_minor"].as_i64(),
        _ => item["bid_count"].as_i64(),
    }
    .expect("sort key present")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn listings_page_through_every_auction_once_in_order_and_bad_queries_get_400() {
    let env = TestEnv::with_workers(3).await;
    let base_end = now().millis() + 600_000;
    let mut lines = String::new();
    let mut expected_bids = 0;
    for i in 0..23i64 {
        let id = format!("lst-{i:02}");
        // Distinct end times and prices in an order unlike the ids'.
        let price = 1_000 + ((i * 5) % 23) * 100;
        lines += &create_and_start(&id, base_end + ((i * 7) % 23) * 1_000, price, true);
        // Bid counts 0..3: many ties, so pages must break them by auction id.
        for b in 0..(i % 4) {
            lines += &bid(&id, &format!("bidder-{b}"), price + b * 100);
            lines.push('\n');
            expected_bids += 1;
        }
    }
    lines += &create_and_start("lst-draft", base_end, 500, false);
    produce(&env, "t-a", &lines).await;
    let mut other = String::new();
    for i in 0..3 {
        other += &create_and_start(&format!("oth-{i}"), base_end, 700, true);
    }
    produce(&env, "t-b", &other).await;

    let api = Api::start(&env).await;
    let (t_a, t_b) = (api.token("t-a", "reader"), api.token("t-b", "reader"));
    let caught_up = eventually(TIMEOUT, || async {
        let (status, body) = api.get("/auctions?limit=100", Some(&t_a)).await;
        let items = body["items"].as_array()?.clone();
        let bids: i64 = items.iter().filter_map(|i| i["bid_count"].as_i64()).sum();
        let others = api.get("/auctions/oth-2", Some(&t_b)).await.0;
        (status == 200 && items.len() == 23 && bids == expected_bids && others == 200).then_some(())
    })
    .await;
    assert!(
        caught_up.is_some(),
        "read model never showed the 23 auctions"
    );

    let expected: HashSet<String> = (0..23).map(|i| format!("lst-{i:02}")).collect();
    for sort in ["end_time", "current_price", "bid_count"] {
        for order in ["asc", "desc"] {
            let mut seen = Vec::new();
            let mut cursor: Option<String> = None;
            let mut pages = 0;
            loop {
                let mut path = format!("/auctions?status=ACTIVE&sort={sort}&order={order}&limit=5");
                if let Some(c) = &cursor {
                    path += &format!("&cursor={c}");
                }
                let (status, body) = api.get(&path, Some(&t_a)).await;
                assert_eq!(status, 200, "{path}: {body}");
                let items = body["items"].as_array().expect("items");
                assert!(items.len() <= 5);
                pages += 1;
                for item in items {
                    let id = item["auction_id"].as_str().expect("id").to_owned();
                    seen.push((sort_key(item, sort), id));
                    assert_eq!(item["current_price"]["currency"], "EUR");
                }
                match body["next_cursor"].as_str() {
                    Some(next) => cursor = Some(next.to_owned()),
                    None => break,
                }
                assert!(pages < 10, "pagination does not end");
            }
            assert_eq!(pages, 5, "{sort} {order}: 23 rows in pages of 5");
            let ids: Vec<&String> = seen.iter().map(|(_, id)| id).collect();
            let unique: HashSet<String> = ids.iter().map(|id| (*id).clone()).collect();
            assert_eq!(ids.len(), 23, "{sort} {order}: every auction exactly once");
            assert_eq!(
                unique, expected,
                "{sort} {order}: only tenant t-a's ACTIVE auctions"
            );
            let mut sorted = seen.clone();
            sorted.sort();
            if order == "desc" {
                sorted.reverse();
            }
            assert_eq!(
                seen, sorted,
                "{sort} {order}: ordered by key, then auction id"
            );
        }
    }

    // Details: money in minor units, tenant-scoped.
    let (status, lot) = api.get("/auctions/lst-03", Some(&t_a)).await;
    assert_eq!(status, 200, "{lot}");
    assert_eq!(lot["bid_count"], 3);
    assert_eq!(lot["leading_bidder"], "bidder-2");
    assert_eq!(lot["bidder_count"], 3);
    let top: Vec<&str> = lot["top_bidders"]
        .as_array()
        .expect("top_bidders")
        .iter()
        .filter_map(|b| b["user_id"].as_str())
        .collect();
    assert_eq!(top, ["bidder-2", "bidder-1", "bidder-0"], "highest first");
    assert_eq!(lot["current_price"]["amount_minor"], 1_000 + 15 * 100 + 200);
    assert_eq!(lot["current_price"]["currency"], "EUR");
    assert_eq!(lot["status"], "ACTIVE");
    let (status, drafts) = api.get("/auctions?status=DRAFT", Some(&t_a)).await;
    assert_eq!(
        (status, drafts["items"][0]["auction_id"].as_str()),
        (200, Some("lst-draft"))
    );
    let (status, body) = api.get("/auctions/oth-0", Some(&t_a)).await;
    assert_eq!(
        (status, &body["error"]),
        (404, &Value::from("auction not found"))
    );
    let (status, _) = api.get("/auctions/oth-0/live", Some(&t_a)).await;
    assert_eq!(
        status, 404,
        "another tenant's auction cannot be watched either"
    );
    let (status, body) = api.get("/auctions/oth-0", Some(&t_b)).await;
    assert_eq!((status, body["auction_id"].as_str()), (200, Some("oth-0")));

    // Bad requests: 400 with a reason that names the problem.
    let (_, first_page) = api.get("/auctions?limit=5", Some(&t_a)).await;
    let end_time_cursor = first_page["next_cursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    for (query, word) in [
        ("status=OPEN", "status"),
        ("sort=price", "sort"),
        ("order=up", "order"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=many", "limit"),
        ("cursor=not-a-cursor", "cursor"),
        (
            &format!("sort=bid_count&cursor={end_time_cursor}") as &str,
            "cursor",
        ),
        ("page=2", "unknown parameter"),
        ("limit=5&limit=6", "more than once"),
    ] {
        let (status, body) = api.get(&format!("/auctions?{query}"), Some(&t_a)).await;
        assert_eq!(status, 400, "{query}: {body}");
        let reason = body["error"].as_str().expect("error reason");
        assert!(reason.contains(word), "{query}: {reason}");
    }
    let (status, body) = api.get("/nowhere", Some(&t_a)).await;
    assert_eq!((status, body["error"].is_string()), (404, true));
    assert_eq!(api.get_text("/readyz").await, (200, "ok".to_owned()));

    api.stop().await;
    env.stop().await;
}

/// Reads Server-Sent Events off a streaming response.
struct SseReader {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

struct SseEvent {
    name: String,
    data: Value,
}

impl SseReader {
    /// The next event (comments skipped), or None when the stream ends.
    async fn next(&mut self, timeout: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
                let text = String::from_utf8(block).expect("UTF-8 events");
                let (mut name, mut data) = ("message".to_owned(), String::new());
                for line in text.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        name = value.trim().to_owned();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.trim_start());
                    }
                }
                if data.is_empty() {
                    continue; // keep-alive comment
                }
                let data = serde_json::from_str(&data).expect("event data is JSON");
                return Some(SseEvent { name, data });
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .expect("an SSE event in time")
                .expect("stream readable")?;
            self.buffer.extend_from_slice(&chunk);
        }
    }

    /// Skips events until a `BidPlaced` of version `version`.
    async fn bid_placed(&mut self, version: i64) -> SseEvent {
        loop {
            let event = self
                .next(Duration::from_secs(10))
                .await
                .expect("stream open");
            if event.name == "BidPlaced" && event.data["version"] == version {
                return event;
            }
            assert_ne!(event.name, "lagged", "a lone client must not lag");
        }
    }
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_live_client_receives_each_bid_as_it_is_placed() {
    let env = TestEnv::with_workers(2).await;
    let end_time = now().millis() + 600_000;
    produce(
        &env,
        "t-live",
        &create_and_start("live-1", end_time, 1_000, true),
    )
    .await;
    produce(
        &env,
        "t-else",
        &create_and_start("live-2", end_time, 1_000, true),
    )
    .await;
    let api = Api::start(&env).await;
    let t_live = api.token("t-live", "watcher");
    let active = eventually(TIMEOUT, || async {
        let (_, body) = api.get("/auctions/live-1", Some(&t_live)).await;
        (body["status"] == "ACTIVE").then_some(body)
    })
    .await
    .expect("live-1 becomes ACTIVE in the read model");
    assert_eq!(active["version"], 2);

    let response = api
        .http
        .get(format!("{}/auctions/live-1/live", api.base))
        .bearer_auth(&t_live)
        .send()
        .await
        .expect("live request");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let mut sse = SseReader {
        response,
        buffer: Vec::new(),
    };
    let snapshot = sse.next(Duration::from_secs(10)).await.expect("snapshot");
    assert_eq!(snapshot.name, "snapshot");
    assert_eq!(snapshot.data["version"], 2);

    // First bid the way a client sends one: `gavel produce` (connects a producer).
    let sent = Instant::now();
    produce(&env, "t-live", &bid("live-1", "ann", 1_000)).await;
    let first = sse.bid_placed(3).await;
    let first_latency = sent.elapsed();
    assert_eq!(first.data["bidder_id"], "ann");
    assert_eq!(first.data["current_price"]["amount_minor"], 1_000);
    assert_eq!(first.data["current_price"]["currency"], "EUR");
    assert_eq!(first.data["auction_id"], "live-1");

    // Then a bid stream through one connected producer: send -> SSE received.
    let mut producer = CommandProducer::connect(&env.config)
        .await
        .expect("producer");
    // Warm-up, unmeasured: a producer's first send connects to the brokers.
    let (warm, meta) = parse_line(&bid("live-2", "eve", 1_000), now(), "t-else").expect("bid");
    producer.send(&warm, &meta).await.expect("send warm-up");
    producer.flush().await.expect("warm-up acked");
    let mut latencies = Vec::new();
    let mut since_append = Vec::new();
    for i in 1..=20i64 {
        // A bid on another tenant's auction in between must not show up.
        let (noise, meta) =
            parse_line(&bid("live-2", "eve", 1_000 + i * 100), now(), "t-else").expect("noise bid");
        producer.send(&noise, &meta).await.expect("send noise");
        let amount = 1_000 + i * 100;
        let (command, meta) = parse_line(
            &bid("live-1", &format!("bidder-{}", i % 3), amount),
            now(),
            "t-live",
        )
        .expect("bid line");
        let sent = Instant::now();
        producer.send(&command, &meta).await.expect("send bid");
        let event = sse.bid_placed(3 + i).await;
        latencies.push(sent.elapsed());
        since_append.push(
            wall_ms()
                - event.data["occurred_at_ms"]
                    .as_i64()
                    .expect("occurred_at_ms"),
        );
        assert_eq!(event.data["current_price"]["amount_minor"], amount);
        assert_eq!(event.data["auction_id"], "live-1");
    }
    producer.flush().await.expect("flush");
    latencies.sort();
    since_append.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "live update latency: first bid via `gavel produce` {:.1} ms; 20 bids send->SSE: \
         p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms; broker append->SSE: p50 {} ms, max {} ms",
        ms(first_latency),
        ms(latencies[9]),
        ms(latencies[18]),
        ms(latencies[19]),
        since_append[9],
        since_append[19],
    );
    assert!(first_latency < Duration::from_secs(2), "{first_latency:?}");
    assert!(latencies[19] < Duration::from_secs(2), "{latencies:?}");

    // Shutdown ends the open stream, and the server returns.
    api.shutdown.trigger();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while sse.next(Duration::from_secs(10)).await.is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the live stream ends on shutdown");
    api.stop().await;
    env.stop().await;
}
