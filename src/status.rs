//! `gavel status`: consumer lag, DLQ sizes and worker readiness, for a human at
//! a terminal; and `gavel lag-exporter`, which publishes the same lag gauges.

use anyhow::Result;
use gavel_domain::saga::Participant;
use gavel_processors::saga::kind::{Order, Payment};
use gavel_processors::saga::{self, SagaTopics};
use gavel_runtime::observe::{self, lag::Target, PartitionLag};
use gavel_runtime::{dlq, Config, Shutdown};
use gavel_sinks::{event_store, participants};
use std::time::Duration;

/// Every stage's consumer group and the topics it really subscribes to, plus
/// `GAVEL_LAG_WATCH`.
pub fn lag_targets(config: &Config) -> Vec<Target> {
    let target = |group: String, topics: &[&str]| Target {
        group,
        topics: topics.iter().map(|t| (*t).to_owned()).collect(),
    };
    let t = &config.topics;
    let mut targets = vec![
        target(config.aggregate_group.clone(), &[&t.commands]),
        target(config.project_group.clone(), &[&t.events]),
        target(config.sink_group.clone(), &t.views()),
        target(event_store::consumer_group(config), &[&t.events]),
    ];
    for (kind, topics) in [
        ("payment", SagaTopics::of(config, &Payment)),
        ("order", SagaTopics::of(config, &Order)),
    ] {
        let group = saga::consumer_group(config, kind);
        targets.push(target(group, &[&topics.trigger, &topics.replies]));
    }
    for participant in Participant::ALL {
        let name = participant.as_str();
        let group = participants::consumer_group(config, name);
        targets.push(target(group, &[&t.participant_commands(name)]));
    }
    let watched = config.lag_watch.iter();
    targets.extend(watched.map(|(g, topic)| target(g.clone(), &[topic])));
    targets
}

/// Serves the lag of every pipeline group on `/metrics` until shutdown: lag
/// measured from outside stays true while a worker is stalled or down.
pub async fn lag_exporter(config: &Config, shutdown: &Shutdown) -> Result<()> {
    let mut obs = observe::serve(config, "lag-exporter").await?;
    obs.watch_lag_of(lag_targets(config));
    obs.readiness.set_started();
    while !shutdown.is_triggered() {
        obs.readiness.beat();
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.triggered() => {}
        }
    }
    Ok(())
}

pub async fn status(config: &Config, workers: Vec<String>) -> Result<()> {
    let blocking = config.clone();
    let (lags, dlqs) = tokio::task::spawn_blocking(move || {
        let lags: Vec<(Target, Result<Vec<PartitionLag>, String>)> = lag_targets(&blocking)
            .into_iter()
            .map(|t| {
                let lag = observe::measure_group(&blocking, &t.group, &t.topics);
                (t, lag.map_err(|e| e.to_string()))
            })
            .collect();
        (lags, dlq::list(&blocking).map_err(|e| e.to_string()))
    })
    .await?;
    println!("CONSUMER LAG");
    println!(
        "  {:<40} {:<36} {:>10} {:>10}  partitions",
        "group", "topic", "records", "seconds"
    );
    for (target, lag) in lags {
        print_lag(&target, lag);
    }
    println!("\nDEAD LETTERS");
    match dlqs {
        Ok(dlqs) if dlqs.is_empty() => println!("  no dead-letter topics"),
        Ok(dlqs) => {
            for d in dlqs {
                println!("  {:<60} {:>10} records", d.topic, d.records);
            }
        }
        Err(error) => println!("  unavailable: {error}"),
    }
    println!("\nWORKERS");
    let workers = if workers.is_empty() {
        config.status_workers.clone()
    } else {
        workers
    };
    if workers.is_empty() {
        println!("  none given (--worker host:port or GAVEL_STATUS_WORKERS)");
    }
    for worker in workers {
        println!("  {:<24} {}", worker, probe(&worker).await);
    }
    Ok(())
}

fn print_lag(target: &Target, lag: Result<Vec<PartitionLag>, String>) {
    let lags = match lag {
        Ok(lags) => lags,
        Err(error) => {
            println!("  {:<40} unavailable: {error}", target.group);
            return;
        }
    };
    for topic in &target.topics {
        let of_topic: Vec<&PartitionLag> = lags.iter().filter(|l| &l.topic == topic).collect();
        let records: i64 = of_topic.iter().map(|l| l.records).sum();
        let seconds = of_topic.iter().map(|l| l.seconds).fold(0.0, f64::max);
        let never = of_topic.iter().all(|l| l.committed.is_none());
        let detail: Vec<String> = of_topic
            .iter()
            .filter(|l| l.records > 0)
            .map(|l| format!("p{}={}", l.partition, l.records))
            .collect();
        let note = if never && !of_topic.is_empty() {
            "never committed".to_owned()
        } else {
            detail.join(" ")
        };
        println!(
            "  {:<40} {:<36} {:>10} {:>10.1}  {note}",
            target.group, topic, records, seconds
        );
    }
}

/// `ready`, or `NOT READY: reasons`, or why the probe failed.
async fn probe(worker: &str) -> String {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap_or_default();
    let url = format!("http://{worker}/ready");
    match client.get(&url).send().await {
        Ok(response) => {
            let ok = response.status().is_success();
            let report: Option<observe::Report> = response.json().await.ok();
            let name = report
                .as_ref()
                .map_or("?", |r| r.worker.as_str())
                .to_owned();
            match (ok, report) {
                (true, _) => format!("ready ({name})"),
                (false, Some(r)) => format!("NOT READY ({name}): {}", r.reasons.join("; ")),
                (false, None) => "NOT READY (no readiness report)".to_owned(),
            }
        }
        Err(error) => format!("UNREACHABLE: {error}"),
    }
}
