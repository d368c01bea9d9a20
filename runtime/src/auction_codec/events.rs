//! Auction events <-> `dev.gavel.auction.events.*` records (envelope inside).

use super::record::{long, optional_long, optional_string, string, timestamp, Fields};
use crate::envelope::EventEnvelope;
use crate::{Result, RuntimeError};
use apache_avro::types::Value;
use gavel_domain::auction::AuctionEvent;
use gavel_domain::{AuctionId, TenantId, UserId};

const NAMESPACE: &str = "dev.gavel.auction.events";

pub const EVENT_RECORDS: [&str; 5] = [
    "dev.gavel.auction.events.AuctionCreated",
    "dev.gavel.auction.events.AuctionStarted",
    "dev.gavel.auction.events.BidPlaced",
    "dev.gavel.auction.events.AuctionCancelled",
    "dev.gavel.auction.events.AuctionEnded",
];

pub fn event_record_name(event: &AuctionEvent) -> &'static str {
    match event {
        AuctionEvent::Created { .. } => EVENT_RECORDS[0],
        AuctionEvent::Started { .. } => EVENT_RECORDS[1],
        AuctionEvent::BidPlaced { .. } => EVENT_RECORDS[2],
        AuctionEvent::Cancelled { .. } => EVENT_RECORDS[3],
        AuctionEvent::Ended { .. } => EVENT_RECORDS[4],
    }
}

pub fn event_to_avro(event: &AuctionEvent, envelope: &EventEnvelope) -> Value {
    let mut fields = vec![
        ("event_id".to_owned(), string(&envelope.event_id)),
        (
            "aggregate_id".to_owned(),
            string(envelope.aggregate_id.as_str()),
        ),
        (
            "aggregate_version".to_owned(),
            long(envelope.aggregate_version as i64),
        ),
        ("occurred_at".to_owned(), timestamp(envelope.occurred_at)),
        (
            "correlation_id".to_owned(),
            string(&envelope.correlation_id),
        ),
        ("causation_id".to_owned(), string(&envelope.causation_id)),
        ("tenant_id".to_owned(), string(envelope.tenant_id.as_str())),
        (
            "schema_version".to_owned(),
            Value::Int(envelope.schema_version),
        ),
    ];
    match event {
        AuctionEvent::Created {
            seller_id,
            title,
            starting_price,
            reserve_price,
            min_increment,
            end_time,
        } => fields.extend([
            ("seller_id".to_owned(), string(seller_id.as_str())),
            ("title".to_owned(), string(title)),
            (
                "currency".to_owned(),
                string(starting_price.currency().as_str()),
            ),
            (
                "starting_price_minor".to_owned(),
                long(starting_price.minor()),
            ),
            (
                "reserve_price_minor".to_owned(),
                optional_long(reserve_price.map(|m| m.minor())),
            ),
            (
                "min_increment_minor".to_owned(),
                long(min_increment.minor()),
            ),
            ("end_time".to_owned(), timestamp(*end_time)),
        ]),
        AuctionEvent::Started { started_at } => {
            fields.push(("started_at".to_owned(), timestamp(*started_at)))
        }
        AuctionEvent::BidPlaced {
            bidder_id,
            amount,
            previous_price,
            placed_at,
            max_amount,
            automatic,
        } => fields.extend([
            ("bidder_id".to_owned(), string(bidder_id.as_str())),
            ("amount_minor".to_owned(), long(amount.minor())),
            (
                "previous_price_minor".to_owned(),
                long(previous_price.minor()),
            ),
            ("currency".to_owned(), string(amount.currency().as_str())),
            ("placed_at".to_owned(), timestamp(*placed_at)),
            (
                "max_amount_minor".to_owned(),
                optional_long(max_amount.map(|m| m.minor())),
            ),
            ("automatic".to_owned(), Value::Boolean(*automatic)),
        ]),
        AuctionEvent::Cancelled { reason } => fields.push(("reason".to_owned(), string(reason))),
        AuctionEvent::Ended {
            winner_id,
            final_price,
            reserve_met,
            ended_at,
        } => fields.extend([
            (
                "winner_id".to_owned(),
                optional_string(winner_id.as_ref().map(UserId::as_str)),
            ),
            ("final_price_minor".to_owned(), long(final_price.minor())),
            (
                "currency".to_owned(),
                string(final_price.currency().as_str()),
            ),
            ("reserve_met".to_owned(), Value::Boolean(*reserve_met)),
            ("ended_at".to_owned(), timestamp(*ended_at)),
        ]),
    }
    Value::Record(fields)
}

pub fn event_from_avro(record_name: &str, value: Value) -> Result<(AuctionEvent, EventEnvelope)> {
    let short = record_name
        .strip_prefix(NAMESPACE)
        .and_then(|n| n.strip_prefix('.'));
    let record: &'static str = match short {
        Some("AuctionCreated") => "AuctionCreated",
        Some("AuctionStarted") => "AuctionStarted",
        Some("BidPlaced") => "BidPlaced",
        Some("AuctionCancelled") => "AuctionCancelled",
        Some("AuctionEnded") => "AuctionEnded",
        _ => {
            return Err(RuntimeError::Mapping(format!(
                "unknown event type {record_name}"
            )))
        }
    };
    let f = Fields::new(record, value)?;
    let envelope = EventEnvelope {
        event_id: f.string("event_id")?,
        aggregate_id: AuctionId::new(f.string("aggregate_id")?),
        aggregate_version: f.version("aggregate_version")?,
        occurred_at: f.timestamp("occurred_at")?,
        correlation_id: f.string("correlation_id")?,
        causation_id: f.string("causation_id")?,
        tenant_id: TenantId::new(f.string("tenant_id")?),
        schema_version: f.int("schema_version").unwrap_or(1),
    };
    let event = match record {
        "AuctionCreated" => {
            let currency = f.currency("currency")?;
            AuctionEvent::Created {
                seller_id: UserId::new(f.string("seller_id")?),
                title: f.string("title")?,
                starting_price: f.money("starting_price_minor", currency)?,
                reserve_price: f.optional_money("reserve_price_minor", currency)?,
                min_increment: f.money("min_increment_minor", currency)?,
                end_time: f.timestamp("end_time")?,
            }
        }
        "AuctionStarted" => AuctionEvent::Started {
            started_at: f.timestamp("started_at")?,
        },
        "BidPlaced" => {
            let currency = f.currency("currency")?;
            AuctionEvent::BidPlaced {
                bidder_id: UserId::new(f.string("bidder_id")?),
                amount: f.money("amount_minor", currency)?,
                previous_price: f.money("previous_price_minor", currency)?,
                placed_at: f.timestamp("placed_at")?,
                max_amount: f.optional_money("max_amount_minor", currency)?,
                automatic: f.boolean("automatic")?,
            }
        }
        "AuctionCancelled" => AuctionEvent::Cancelled {
            reason: f.string("reason")?,
        },
        _ => {
            let currency = f.currency("currency")?;
            AuctionEvent::Ended {
                winner_id: f.optional_string("winner_id")?.map(UserId::new),
                final_price: f.money("final_price_minor", currency)?,
                reserve_met: f.boolean("reserve_met")?,
                ended_at: f.timestamp("ended_at")?,
            }
        }
    };
    Ok((event, envelope))
}
