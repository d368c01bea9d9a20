//! `gavel bench decode`: what reading with a reader schema costs per record.
//! The same BidPlaced records are decoded and mapped to domain events three
//! ways in one run: as every consumer did before reader schemas (the writer
//! schema only, the baseline), through this build's resolution when the
//! writer is the current schema (`Same`: no plan), and written by the v1
//! schema, so each record also takes the resolution plan (defaults filled).
//! Pure CPU, no broker. Prints one JSON report and a summary on stderr.

use anyhow::{Context, Result};
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;
use gavel_domain::auction::AuctionEvent;
use gavel_domain::{AuctionId, Currency, Money, TenantId, Timestamp, UserId};
use gavel_runtime::auction_codec::{event_from_avro, event_to_avro};
use gavel_runtime::avro::reader::{reader_schema, Resolution};
use gavel_runtime::envelope::EventEnvelope;
use serde::Serialize;
use std::time::Instant;

const BID_PLACED: &str = "dev.gavel.auction.events.BidPlaced";
const BID_PLACED_V1: &str = include_str!("../schemas/history/BidPlaced.v1.avsc");

#[derive(clap::Args, Clone)]
pub struct DecodeSpec {
    #[arg(long, default_value_t = 300_000)]
    pub records: usize,
}

#[derive(Debug, Serialize)]
pub struct DecodeRun {
    pub records: usize,
    /// Writer schema only, as before reader schemas (ns per record).
    pub writer_only_ns: f64,
    /// Current writer through the reader resolution (`Same`).
    pub current_writer_ns: f64,
    /// v1 writer resolved to the current reader (plan, defaults filled).
    pub v1_writer_ns: f64,
    pub current_writer_ratio: f64,
    pub v1_writer_ratio: f64,
}

pub fn print(spec: &DecodeSpec) -> Result<()> {
    let run = measure(spec)?;
    println!("{}", serde_json::to_string_pretty(&run)?);
    eprintln!(
        "decode + map of {} BidPlaced records: writer schema only {:.0} ns each; through the \
         reader schema {:.0} ns ({:.2}x) when written by the current schema, {:.0} ns ({:.2}x) \
         when written by v1",
        run.records,
        run.writer_only_ns,
        run.current_writer_ns,
        run.current_writer_ratio,
        run.v1_writer_ns,
        run.v1_writer_ratio,
    );
    Ok(())
}

pub fn measure(spec: &DecodeSpec) -> Result<DecodeRun> {
    let current = reader_schema(BID_PLACED).context("no BidPlaced reader schema")?;
    let v1 = Schema::parse_str(BID_PLACED_V1)?;
    let current_bytes = encoded(current, spec.records, true)?;
    let v1_bytes = encoded(&v1, spec.records, false)?;
    let writer_only = time(current, None, &current_bytes)?;
    let same = time(
        current,
        Some(Resolution::new(current, current)?),
        &current_bytes,
    )?;
    let planned = time(&v1, Some(Resolution::new(&v1, current)?), &v1_bytes)?;
    Ok(DecodeRun {
        records: spec.records,
        writer_only_ns: writer_only,
        current_writer_ns: same,
        v1_writer_ns: planned,
        current_writer_ratio: same / writer_only,
        v1_writer_ratio: planned / writer_only,
    })
}

/// ns per record to decode and map every record of `bytes`.
fn time(writer: &Schema, resolution: Option<Resolution>, bytes: &[Vec<u8>]) -> Result<f64> {
    let reader = GenericDatumReader::builder(writer).build()?;
    let started = Instant::now();
    for body in bytes {
        let mut value = reader.read_value(&mut &body[..])?;
        if let Some(resolution) = &resolution {
            value = resolution.apply(value)?;
        }
        std::hint::black_box(event_from_avro(BID_PLACED, value)?);
    }
    Ok(started.elapsed().as_nanos() as f64 / bytes.len().max(1) as f64)
}

/// `records` bodies of bids; the v1 form lacks the v2 fields.
fn encoded(schema: &Schema, records: usize, current: bool) -> Result<Vec<Vec<u8>>> {
    let writer = GenericDatumWriter::builder(schema).build()?;
    let eur = Currency::parse("EUR")?;
    (0..records)
        .map(|i| {
            let amount = Money::new(10_000 + i as i64, eur)?;
            let event = AuctionEvent::BidPlaced {
                bidder_id: UserId::new(format!("bidder-{}", i % 97)),
                amount,
                previous_price: amount,
                placed_at: Timestamp::from_millis(1_700_000_000_000),
                max_amount: None,
                automatic: false,
            };
            let envelope = EventEnvelope {
                event_id: format!("0190a1b2-c3d4-7e5f-8a9b-{i:012}"),
                aggregate_id: AuctionId::new(format!("auction-{}", i % 3000)),
                aggregate_version: 3,
                occurred_at: Timestamp::from_millis(1_700_000_000_000),
                correlation_id: "corr".into(),
                causation_id: "cause".into(),
                tenant_id: TenantId::new("bench"),
                schema_version: if current { 2 } else { 1 },
            };
            let Value::Record(mut fields) = event_to_avro(&event, &envelope) else {
                anyhow::bail!("not a record");
            };
            if !current {
                fields.retain(|(name, _)| name != "max_amount_minor" && name != "automatic");
            }
            let mut body = Vec::with_capacity(160);
            writer.write_value_ref(&mut body, &Value::Record(fields))?;
            Ok(body)
        })
        .collect()
}
