//! What one client cannot do to the HTTP APIs (issue 18, item 6): hold
//! connections open with headers it never finishes (slowloris), take more
//! than the connection cap, or keep a request running past the request
//! timeout. And every request is counted in the HTTP metrics.

mod common;

use common::api::{create_and_start, produce, Api};
use common::process::Worker;
use common::{eventually, TestEnv};
use gavel_producers::produce::now;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SLOW_CLIENTS: usize = 1_000;
const HEADER_TIMEOUT_MS: u64 = 2_000;

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .expect("VmRSS")
}

/// True once the server has closed `stream` (EOF or reset).
async fn closed_by_server(stream: &mut TcpStream, deadline: Instant) -> bool {
    let mut buffer = [0u8; 512];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue, // a 408 the server may send first
            Err(_) => return false,
        }
    }
}

/// Opens the slow connections: half send part of a request head and stop,
/// half send nothing at all.
async fn slowloris(port: u16) -> Vec<TcpStream> {
    let mut streams = Vec::with_capacity(SLOW_CLIENTS);
    for n in 0..SLOW_CLIENTS {
        let mut stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        if n % 2 == 0 {
            stream
                .write_all(b"GET /auctions HTTP/1.1\r\nHost: gavel\r\nX-Slow: ")
                .await
                .expect("partial head");
        }
        streams.push(stream);
    }
    streams
}

/// Runs the attack on one API process and checks it held up.
async fn attack(env: &TestEnv, role: &str) {
    let port = free_port();
    let timeout = HEADER_TIMEOUT_MS.to_string();
    let mut worker = Worker::spawn_with_env(
        env,
        &format!("{role} --listen 127.0.0.1:{port}"),
        "slow",
        &[("GAVEL_HTTP_HEADER_TIMEOUT_MS", timeout.as_str())],
    );
    // No pooled connections: an idle keep-alive connection is cut at the
    // same header timeout as the attackers, and reusing one the server is
    // closing that instant fails the request (a race of this client's, not
    // a refusal by the server).
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let healthz = format!("http://127.0.0.1:{port}/healthz");
    let up = eventually(Duration::from_secs(60), || async {
        let ok = http.get(&healthz).send().await.ok()?.status().is_success();
        ok.then_some(())
    })
    .await;
    assert!(
        up.is_some() && !worker.exited_within(Duration::ZERO),
        "{role} started"
    );
    let pid = worker.child.id();
    let baseline = rss_kib(pid);

    let opened = Instant::now();
    let mut streams = slowloris(port).await;
    let all_open = Instant::now();
    // Meanwhile a well-behaved client is served at once.
    let started = Instant::now();
    let response = http
        .get(&healthz)
        .send()
        .await
        .expect("served during the attack");
    assert!(response.status().is_success(), "{role}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{role}: {:?}",
        started.elapsed()
    );
    let during = rss_kib(pid);

    // From when the last connection was open (its header clock starts
    // then), with slack for a loaded machine: a server without the timeout
    // would never close them at all.
    let deadline = all_open + Duration::from_millis(HEADER_TIMEOUT_MS) + Duration::from_secs(6);
    let mut closed = 0;
    for stream in &mut streams {
        if closed_by_server(stream, deadline).await {
            closed += 1;
        }
    }
    let took = opened.elapsed();
    let opening = all_open.duration_since(opened);
    assert_eq!(
        closed, SLOW_CLIENTS,
        "{role}: every slow connection closed by {took:?} (opening them took {opening:?})"
    );
    let grown_mib = during.saturating_sub(baseline) / 1024;
    println!("{role}: {SLOW_CLIENTS} slow connections closed in {took:?}; RSS {baseline} -> {during} KiB");
    assert!(
        grown_mib < 50,
        "{role}: RSS grew by {grown_mib} MiB under the attack"
    );
    let after = http.get(&healthz).send().await.expect("served after");
    assert!(after.status().is_success());
    worker.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_headers_are_cut_off_at_the_header_timeout_on_both_apis() {
    let env = TestEnv::new(1).await;
    attack(&env, "query-api").await;
    attack(&env, "command-api").await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_over_the_cap_wait_until_a_slot_frees() {
    let env = TestEnv::new(1).await;
    let api = Api::start_with(
        &env,
        &[
            ("GAVEL_HTTP_MAX_CONNECTIONS", "20"),
            ("GAVEL_HTTP_HEADER_TIMEOUT_MS", "1500"),
        ],
    )
    .await;
    let port: u16 = api
        .base
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    // The Api's own client holds a keep-alive connection from /healthz; let
    // the header timeout close it before counting.
    tokio::time::sleep(Duration::from_millis(1_700)).await;
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(
            TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect"),
        );
    }
    let fresh = reqwest::Client::new();
    let started = Instant::now();
    let waiting = fresh.get(format!("{}/healthz", api.base)).send();
    let response = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("answered once the idle connections timed out")
        .expect("response");
    let waited = started.elapsed();
    assert!(response.status().is_success());
    assert!(
        waited >= Duration::from_millis(1_000),
        "the 21st connection was served after {waited:?}, before any slot was free"
    );
    drop(idle);
    api.stop().await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_stuck_in_the_database_ends_at_the_request_timeout_and_is_counted() {
    let env = TestEnv::with_workers(1).await;
    produce(
        &env,
        "t1",
        &create_and_start("slow-1", now().millis() + 600_000, 100, true),
    )
    .await;
    let api = Api::start_with(&env, &[("GAVEL_HTTP_REQUEST_TIMEOUT_MS", "1000")]).await;
    let token = api.token("t1", "ann");
    let seen = eventually(Duration::from_secs(60), || async {
        (api.get("/auctions/slow-1", Some(&token)).await.0 == 200).then_some(())
    })
    .await;
    assert!(seen.is_some(), "slow-1 in the read model");

    // Another session locks the table: the API's query waits on it.
    let mut pg = env.pg().await;
    let lock = pg.transaction().await.expect("transaction");
    let table = format!("{}.auction_details", env.config.postgres_schema);
    lock.batch_execute(&format!("LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
        .await
        .expect("lock");
    let started = Instant::now();
    let (status, body) = api.get("/auctions/slow-1", Some(&token)).await;
    let took = started.elapsed();
    lock.rollback().await.expect("unlock");
    assert_eq!(status, 408, "{body}");
    assert!(took < Duration::from_secs(3), "answered after {took:?}");
    assert_eq!(api.get("/nowhere", Some(&token)).await.0, 404);

    let metrics = gavel_runtime::observe::metrics::render();
    for series in [
        r#"gavel_query_api_requests_total{route="/auctions/{id}",status="200"}"#,
        r#"gavel_query_api_requests_total{route="/auctions/{id}",status="408"}"#,
        r#"gavel_query_api_requests_total{route="unmatched",status="404"}"#,
        r#"gavel_query_api_request_duration_seconds_count{route="/auctions/{id}"}"#,
    ] {
        assert!(
            metrics.contains(series),
            "{series} missing from:\n{metrics}"
        );
    }
    api.stop().await;
    env.stop().await;
}
