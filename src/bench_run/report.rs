//! The run's report: one JSON document with every figure, a Markdown summary
//! table beside it, written under bench/reports/.

use super::pipeline::{RateRun, Throughput};
use super::raw::RawLimit;
use super::resources::WorkerUse;
use super::saga::SagaRun;
use serde::Serialize;
use serde_json::{json, Value};
use std::fmt::Write;

/// Kafka's own ProducerPerformance / ConsumerPerformance, run by bench.sh.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct KafkaPerf {
    pub produce_records_per_s: f64,
    pub consume_records_per_s: f64,
    pub record_bytes: usize,
}

/// A figure that was measured, or why not.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Part<T> {
    Measured(T),
    Missing {
        status: &'static str,
        reason: String,
    },
}

impl<T> Part<T> {
    pub fn missing(reason: impl Into<String>) -> Self {
        Self::Missing {
            status: "missing",
            reason: reason.into(),
        }
    }

    pub fn failed(error: &anyhow::Error) -> Self {
        Self::Missing {
            status: "failed",
            reason: format!("{error:#}"),
        }
    }

    pub fn get(&self) -> Option<&T> {
        match self {
            Self::Measured(value) => Some(value),
            Self::Missing { .. } => None,
        }
    }

    fn why(&self) -> String {
        match self {
            Self::Measured(_) => String::new(),
            Self::Missing { status, reason } => format!("{status}: {reason}"),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub gavel_commit: String,
    pub date: String,
    pub machine: Value,
    pub settings: Value,
    pub wall_s: f64,
    pub kafka_perf: Part<KafkaPerf>,
    pub rdkafka_raw: Part<RawLimit>,
    pub end_to_end: Part<Throughput>,
    pub latency: Part<Vec<RateRun>>,
    pub resources: Part<Vec<WorkerUse>>,
    pub aggregate: Part<Value>,
    pub read_side: Part<Value>,
    pub saga: Part<SagaRun>,
    /// Avro decoding through the reader schemas against the writer schema alone.
    pub decode: Part<crate::bench_decode::DecodeRun>,
    /// Derived ratios: Gavel figures over the raw limits measured above.
    pub ratios: Value,
}

impl Report {
    /// Gavel's figures over the raw broker limits of the same run.
    pub fn compute_ratios(&mut self) {
        let raw = self.rdkafka_raw.get();
        let perf = self.kafka_perf.get();
        let e2e = self.end_to_end.get().map(|t| t.commands_per_s);
        // The pipeline writes then reads every record at least once: its
        // limit is the slower of raw produce and raw consume.
        let limit = |p: f64, c: f64| p.min(c);
        self.ratios = json!({
            "e2e_vs_rdkafka_raw": e2e.zip(raw).map(|(e, r)| e / limit(r.produce_records_per_s, r.consume_records_per_s)),
            "e2e_vs_kafka_perf": e2e.zip(perf).map(|(e, p)| e / limit(p.produce_records_per_s, p.consume_records_per_s)),
            "aggregate_eos_vs_rdkafka_produce": self.aggregate.get().and_then(|a| a["eos_commands_per_s"].as_f64()).zip(raw).map(|(a, r)| a / r.produce_records_per_s),
            "restore_vs_rdkafka_consume": self.aggregate.get().and_then(|a| a["restore_records_per_s"].as_f64()).zip(raw).map(|(a, r)| a / r.consume_records_per_s),
        });
    }

    pub fn markdown(&self, plot_legend: &str) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "# Gavel benchmark {}\n", self.date);
        let _ = writeln!(
            md,
            "commit `{}`; {}; wall time {:.0} s\n",
            self.gavel_commit,
            machine_line(&self.machine),
            self.wall_s
        );
        self.throughput_table(&mut md);
        self.latency_table(&mut md);
        self.resource_table(&mut md);
        self.saga_section(&mut md);
        let _ = writeln!(md, "## Plot\n\n{plot_legend}");
        md
    }

    fn throughput_table(&self, md: &mut String) {
        let _ = writeln!(
            md,
            "## Throughput (records/s; ratio = share of the raw limit of the same run)\n"
        );
        let _ = writeln!(md, "| figure | value | note |\n|---|---:|---|");
        let mut row = |figure: &str, value: Option<f64>, note: String| {
            let value = value.map_or("missing".into(), |v| format!("{v:.0}"));
            let _ = writeln!(md, "| {figure} | {value} | {note} |");
        };
        let perf = self.kafka_perf.get();
        row(
            "Kafka ProducerPerformance (raw produce)",
            perf.map(|p| p.produce_records_per_s),
            note_bytes(perf.map(|p| p.record_bytes), &self.kafka_perf.why()),
        );
        row(
            "Kafka ConsumerPerformance (raw consume)",
            perf.map(|p| p.consume_records_per_s),
            self.kafka_perf.why(),
        );
        let raw = self.rdkafka_raw.get();
        row(
            "rdkafka raw produce loop",
            raw.map(|r| r.produce_records_per_s),
            note_bytes(raw.map(|r| r.record_bytes), &self.rdkafka_raw.why()),
        );
        row(
            "rdkafka raw consume loop",
            raw.map(|r| r.consume_records_per_s),
            self.rdkafka_raw.why(),
        );
        match self.end_to_end.get() {
            Some(t) => {
                let ratio = self.ratios["e2e_vs_rdkafka_raw"]
                    .as_f64()
                    .map_or(String::new(), |r| {
                        format!("{:.1} % of the rdkafka raw limit", 100.0 * r)
                    });
                row(
                    "**end to end** commands/s (all stages done)",
                    Some(t.commands_per_s),
                    format!(
                        "{} commands, {} events, {} view records in {:.1} s; {ratio}",
                        t.commands, t.events, t.view_records, t.seconds
                    ),
                );
                row("end to end events/s", Some(t.events_per_s), String::new());
                for stage in &t.stages {
                    row(
                        &format!("stage {} (separate process)", stage.stage),
                        Some(stage.records_per_s),
                        format!("{} records done at {:.1} s", stage.records, stage.done_s),
                    );
                }
                for (source, unit, result) in [
                    ("events", "events", &t.rebuild_from_events),
                    (
                        "events in the event store",
                        "events",
                        &t.rebuild_from_event_store,
                    ),
                    ("view topics", "view records", &t.rebuild),
                ] {
                    match result {
                        Ok(r) => row(
                            &format!("rebuild of all views from the run's {source}, records/s"),
                            Some(r.records_per_s),
                            format!(
                                "{} {unit} into {} rows in {:.1} s, live sink running",
                                r.records, r.rows, r.seconds
                            ),
                        ),
                        Err(why) => row(
                            &format!("rebuild of all views from the run's {source}"),
                            None,
                            format!("failed: {why}"),
                        ),
                    }
                }
            }
            None => row("end to end", None, self.end_to_end.why()),
        }
        let agg = self.aggregate.get();
        let field = |v: Option<&Value>, k: &str| v.and_then(|v| v[k].as_f64());
        let pct = |k: &str| {
            self.ratios[k]
                .as_f64()
                .map_or(String::new(), |r| format!("{:.1} % of raw", 100.0 * r))
        };
        row(
            "aggregate EOS commands/s (in-process, prefilled)",
            field(agg, "eos_commands_per_s"),
            format!(
                "{}{}",
                pct("aggregate_eos_vs_rdkafka_produce"),
                self.aggregate.why()
            ),
        );
        row(
            "aggregate state restore records/s",
            field(agg, "restore_records_per_s"),
            format!(
                "{}{}",
                pct("restore_vs_rdkafka_consume"),
                self.aggregate.why()
            ),
        );
        let read = self.read_side.get();
        row(
            "projector events/s (in-process, prefilled)",
            field(read, "projector_events_per_s"),
            self.read_side.why(),
        );
        row(
            "view sink records/s (in-process, prefilled)",
            field(read, "sink_records_per_s"),
            self.read_side.why(),
        );
        row(
            "rebuild of all views records/s (in-process, stage commands)",
            field(read, "rebuild_records_per_s"),
            self.read_side.why(),
        );
        row(
            "Postgres COPY rows/s (baseline)",
            field(read, "baseline_copy_rows_per_s"),
            self.read_side.why(),
        );
        let saga = self.saga.get();
        row(
            "**saga** payment sagas/s flat out (orchestrator + participants, separate processes)",
            saga.map(|s| s.flat_out.sagas_per_s),
            saga.map_or(self.saga.why(), saga_note),
        );
        let decode = self.decode.get();
        row(
            "**decode** BidPlaced through the reader schema, ns/record (in-process)",
            decode.map(|d| d.current_writer_ns),
            decode.map_or(self.decode.why(), |d| {
                format!(
                    "{:.2}x the writer schema alone ({:.0} ns); a v1 record {:.0} ns ({:.2}x)",
                    d.current_writer_ratio, d.writer_only_ns, d.v1_writer_ns, d.v1_writer_ratio
                )
            }),
        );
        let _ = writeln!(md);
    }

    fn latency_table(&self, md: &mut String) {
        let title =
            "Latency at fixed rates (ms, open loop, from each command's scheduled send time)";
        let Some(runs) = section(md, title, &self.latency) else {
            return;
        };
        let _ = writeln!(md, "| rate/s | via | sent/s | completed/s | accepted | rejected | timed out | outcome p50 | p95 | p99 | max | row p50 | p95 | p99 | max | rows not seen in drain | settled |");
        let _ = writeln!(
            md,
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        );
        for r in runs {
            let (o, w) = (&r.command_to_outcome, &r.command_to_row);
            let c = &r.load.counts;
            let _ = writeln!(
                md,
                "| {:.0} | {} | {:.0} | {:.0} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} |",
                r.target_rate, r.via, r.load.sent_rate, r.load.achieved_rate, c.accepted, c.rejected, c.timed_out + c.pending + c.errors,
                o.p50_ms, o.p95_ms, o.p99_ms, o.max_ms, w.p50_ms, w.p95_ms, w.p99_ms, w.max_ms, r.rows_not_seen_in_drain,
                if r.settled { "yes" } else { "no" }
            );
        }
        let _ = writeln!(md, "\nRow latency is measured by polling `auction_details` every {} ms, so it is an upper bound by at most one poll plus one query. \"completed/s\": commands over the time until the last outcome. \"rows not seen in drain\": accepted changes whose row had not appeared {} s after the last outcome (a stage was still behind). \"settled\": every stage caught up (within 120 s) before the next rate began.\n", super::visible::POLL.as_millis(), super::visible::DRAIN.as_secs());
    }

    fn resource_table(&self, md: &mut String) {
        let Some(workers) = section(md, "Workers (separate processes; /proc)", &self.resources)
        else {
            return;
        };
        let _ = writeln!(md, "| worker | peak RSS MiB | steady RSS MiB | CPU s flat out | CPU s fixed rates | CPU s total |");
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|");
        for w in workers {
            let _ = writeln!(
                md,
                "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
                w.role,
                w.peak_rss_mib,
                w.steady_rss_mib,
                w.cpu_s_throughput,
                w.cpu_s_latency,
                w.cpu_s_total
            );
        }
        let _ = writeln!(md);
    }

    fn saga_section(&self, md: &mut String) {
        let title = "Saga stage (payment saga, participant failure rate 0: the happy path)";
        let Some(s) = section(md, title, &self.saga) else {
            return;
        };
        let _ = writeln!(
            md,
            "Final states (saga census of both phases): {}.\n",
            census_line(&s.census)
        );
        let _ = writeln!(md, "| phase | sagas | sent in s | all final after s | sagas/s | trigger → final p50 | p95 | p99 | max | start → final p50 | p95 | p99 | max |");
        let _ = writeln!(
            md,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for phase in s.paced.iter().chain([&s.flat_out]) {
            let (t, f) = (&phase.trigger_to_final, &phase.start_to_final);
            let name = phase
                .rate
                .map_or("flat out".into(), |r| format!("{r:.0} sagas/s"));
            let _ = writeln!(
                md,
                "| {name} | {} | {:.1} | {:.1} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
                phase.sagas, phase.trigger_send_s, phase.seconds, phase.sagas_per_s,
                t.p50_ms, t.p95_ms, t.p99_ms, t.max_ms, f.p50_ms, f.p95_ms, f.p99_ms, f.max_ms
            );
        }
        let _ = writeln!(md, "\n| process | peak RSS MiB | median RSS MiB | CPU s (both phases) |\n|---|---:|---:|---:|");
        for p in &s.processes {
            let _ = writeln!(
                md,
                "| {} | {:.1} | {:.1} | {:.1} |",
                p.process, p.peak_rss_mib, p.median_rss_mib, p.cpu_s
            );
        }
        let _ = writeln!(md, "\nLatencies in ms, from record timestamps: the trigger's (set when sent) and the saga's first final changelog record's; \"start\" is when the orchestrator read the trigger. Flat out, every trigger is sent at once, so its latencies include the wait behind earlier sagas (a burst); the paced phase shows a saga's own duration.\n");
    }
}

/// A section's heading, then its part's figures, or why there are none.
fn section<'a, T>(md: &mut String, title: &str, part: &'a Part<T>) -> Option<&'a T> {
    let _ = writeln!(md, "## {title}\n");
    if part.get().is_none() {
        let _ = writeln!(md, "{}\n", part.why());
    }
    part.get()
}

/// The throughput row's note: the flat-out phase and the paced latency.
fn saga_note(s: &SagaRun) -> String {
    let f = &s.flat_out;
    let paced = s.paced.as_ref().map_or(String::new(), |p| {
        format!(
            "; at {:.0} sagas/s trigger → final p50 {:.0} ms, p99 {:.0} ms",
            p.rate.unwrap_or(0.0),
            p.trigger_to_final.p50_ms,
            p.trigger_to_final.p99_ms
        )
    });
    format!(
        "{} sagas final in {:.1} s (census of both phases: {}){paced}",
        f.sagas,
        f.seconds,
        census_line(&s.census)
    )
}

/// `COMPLETED=5000 FAILED=0`-style counts of the saga census.
fn census_line(census: &std::collections::BTreeMap<String, i64>) -> String {
    let counts: Vec<String> = census.iter().map(|(s, n)| format!("{s}={n}")).collect();
    counts.join(" ")
}

fn note_bytes(bytes: Option<usize>, why: &str) -> String {
    match bytes {
        Some(bytes) => format!("{bytes}-byte records"),
        None => why.to_owned(),
    }
}

fn machine_line(machine: &Value) -> String {
    format!(
        "{} cores, {} GiB RAM, {}, kernel {}; load average {} at the start, {} at the end",
        machine["nproc"],
        machine["ram_gib"],
        machine["cpu_model"].as_str().unwrap_or("?"),
        machine["kernel"].as_str().unwrap_or("?"),
        machine["loadavg_1m_start"],
        machine["loadavg_1m_end"]
    )
}
