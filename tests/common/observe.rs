//! Probing workers from outside: scrape /metrics and /ready over real HTTP,
//! workers as processes with a known metrics address, stack faults.

use super::process::Worker;
use super::TestEnv;
use std::time::Duration;

/// A loopback address with a port free right now.
pub fn free_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    addr.to_string()
}

/// `gavel <role>` with this test's topics and groups, serving probes on `metrics_addr`.
pub fn spawn_observed(env: &TestEnv, role: &str, instance: &str, metrics_addr: &str) -> Worker {
    Worker::spawn_with_env(env, role, instance, &[("GAVEL_METRICS_ADDR", metrics_addr)])
}

/// GET `http://addr/path`: status and body, or `None` when nothing answers.
pub async fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .ok()?;
    let response = client
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

/// The samples of metric `name` whose labels include every `label="value"` given.
pub fn samples(text: &str, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            let matches = metric == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
            matches.then(|| value.parse().ok()).flatten()
        })
        .collect()
}
