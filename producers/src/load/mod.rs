//! `gavel load`: realistic auction traffic at a target rate (open loop, latency
//! from each command's due time) or flat out, through the HTTP command API or
//! straight to Kafka, with a command -> outcome latency histogram at the end.
//!
//! The pure parts (Zipf popularity, the send schedule, the traffic itself) are
//! separate from the two transports, which share the driver below.

pub mod fill;
pub mod http;
pub mod kafka;
pub mod report;
pub mod schedule;
mod tally;
pub mod traffic;
pub mod zipf;

pub use report::{Counts, Latencies, Summary};
pub use tally::Accepted;

use crate::ProducerError;
use schedule::Schedule;
use serde::Serialize;
use std::time::{Duration, Instant};
use tally::Tally;
use tokio::sync::mpsc;
use traffic::{Planned, Traffic, TrafficSpec};

/// What to send and how fast.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub commands: u64,
    /// Commands per second; 0 = flat out.
    pub rate: f64,
    pub tenant: String,
    pub traffic: TrafficSpec,
    /// How long to wait for one command's outcome before counting it as timed out.
    pub outcome_timeout: Duration,
    /// Flat out: commands in flight at most (HTTP: also the connection count).
    pub concurrency: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub via: &'static str,
    pub commands: u64,
    pub target_rate: f64,
    /// Commands/s the generator got out (below the target when sending itself stalled).
    pub sent_rate: f64,
    /// Commands/s from the first send until the last completion.
    pub achieved_rate: f64,
    pub elapsed_s: f64,
    pub counts: Counts,
    /// Command -> outcome (Kafka) or request -> answer (HTTP), from the due time.
    pub outcome_latency: Summary,
    pub first_error: Option<String>,
    #[serde(skip)]
    pub latencies: Latencies,
}

impl LoadReport {
    pub fn print(&self) {
        println!(
            "{} commands via {} in {:.1} s: {:.0} commands/s completed, {:.0}/s sent (target {}), {} accepted, {} rejected, {} pending, {} timed out, {} errors",
            self.commands,
            self.via,
            self.elapsed_s,
            self.achieved_rate,
            self.sent_rate,
            if self.target_rate > 0.0 { format!("{:.0}/s", self.target_rate) } else { "flat out".into() },
            self.counts.accepted,
            self.counts.rejected,
            self.counts.pending,
            self.counts.timed_out,
            self.counts.errors
        );
        println!("{}", self.outcome_latency.line("command -> outcome"));
        if let Some(error) = &self.first_error {
            println!("first error: {error}");
        }
    }
}

/// A transport: sends one planned command due at `due` and arranges for its
/// completion to reach the tally. It must not wait for the outcome itself,
/// or the schedule would slip (open loop).
#[allow(async_fn_in_trait)]
pub trait Dispatch {
    async fn dispatch(&mut self, planned: Planned, due: Instant) -> Result<(), ProducerError>;
    /// After the last dispatch: flush what is buffered.
    async fn flush(&mut self) -> Result<(), ProducerError>;
}

/// Sends every command on schedule, then waits for every completion.
pub(crate) async fn drive(
    spec: &RunSpec,
    via: &'static str,
    tally: &Tally,
    dispatcher: &mut impl Dispatch,
) -> Result<LoadReport, ProducerError> {
    let started = Instant::now();
    let sent_elapsed = send_all(spec, dispatcher, || tally.sent()).await?;
    tally.all_completed().await;
    let elapsed = started.elapsed();
    let (latencies, counts, first_error) = tally.finish();
    Ok(LoadReport {
        via,
        commands: spec.commands,
        target_rate: spec.rate,
        sent_rate: spec.commands as f64 / sent_elapsed.as_secs_f64(),
        achieved_rate: spec.commands as f64 / elapsed.as_secs_f64(),
        elapsed_s: elapsed.as_secs_f64(),
        counts,
        outcome_latency: latencies.summary(),
        first_error,
        latencies,
    })
}

/// Plans and dispatches every command of the run on its schedule (flat out:
/// as fast as the dispatcher takes them), then flushes. Returns how long the
/// sending took, the flush not included.
pub(crate) async fn send_all(
    spec: &RunSpec,
    dispatcher: &mut impl Dispatch,
    mut on_sent: impl FnMut(),
) -> Result<Duration, ProducerError> {
    let mut traffic =
        Traffic::new(spec.traffic.clone(), crate::produce::now()).ok_or_else(|| {
            ProducerError::Load(
                "the load needs at least one auction and one user, and a Zipf exponent >= 0".into(),
            )
        })?;
    let started = Instant::now();
    let schedule = Schedule::new(started, spec.rate);
    for index in 0..spec.commands {
        let due = match schedule.offset(index) {
            Some(offset) => {
                let due = started + offset;
                tokio::time::sleep_until(due.into()).await;
                due
            }
            None => Instant::now(),
        };
        let progress = index as f64 / spec.commands as f64;
        let planned = traffic.command(index as usize, progress);
        dispatcher.dispatch(planned, due).await?;
        on_sent();
    }
    let sent = started.elapsed();
    dispatcher.flush().await?;
    Ok(sent)
}

/// Where accepted commands are reported, for a caller that tracks read-model
/// visibility; None when nobody does.
pub type AcceptedSink = Option<mpsc::UnboundedSender<Accepted>>;

/// Traffic sizing for a run of `commands` at `rate`: auctions end over the
/// planned duration (flat out: estimated at `flat_out_guess` commands/s).
pub fn planned_ms(commands: u64, rate: f64, flat_out_guess: f64) -> i64 {
    let per_second = if rate > 0.0 { rate } else { flat_out_guess };
    (commands as f64 / per_second.max(1.0) * 1_000.0) as i64
}
