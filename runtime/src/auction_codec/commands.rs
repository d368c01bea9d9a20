//! Auction commands <-> `dev.gavel.auction.commands.*` records.

use super::record::{long, optional_long, string, timestamp, Fields};
use crate::envelope::CommandMeta;
use crate::{Result, RuntimeError};
use apache_avro::types::Value;
use gavel_domain::auction::{
    limits, AuctionCommand, CancelAuction, CreateAuction, EndAuction, PlaceBid, StartAuction,
};
use gavel_domain::{AuctionId, TenantId, UserId};

const NAMESPACE: &str = "dev.gavel.auction.commands";

pub const COMMAND_RECORDS: [&str; 5] = [
    "dev.gavel.auction.commands.CreateAuction",
    "dev.gavel.auction.commands.StartAuction",
    "dev.gavel.auction.commands.PlaceBid",
    "dev.gavel.auction.commands.CancelAuction",
    "dev.gavel.auction.commands.EndAuction",
];

pub fn command_record_name(command: &AuctionCommand) -> String {
    format!("{NAMESPACE}.{}", command.type_name())
}

pub fn command_to_avro(command: &AuctionCommand, meta: &CommandMeta) -> Value {
    let mut fields = vec![
        ("command_id".to_owned(), string(&meta.command_id)),
        ("correlation_id".to_owned(), string(&meta.correlation_id)),
        ("tenant_id".to_owned(), string(meta.tenant_id.as_str())),
        (
            "auction_id".to_owned(),
            string(command.auction_id().as_str()),
        ),
        (
            "expected_version".to_owned(),
            optional_long(meta.expected_version.map(|v| v as i64)),
        ),
        ("actor_id".to_owned(), string(meta.actor_id.as_str())),
    ];
    match command {
        AuctionCommand::Create(c) => fields.extend([
            ("seller_id".to_owned(), string(c.seller_id.as_str())),
            ("title".to_owned(), string(&c.title)),
            (
                "currency".to_owned(),
                string(c.starting_price.currency().as_str()),
            ),
            (
                "starting_price_minor".to_owned(),
                long(c.starting_price.minor()),
            ),
            (
                "reserve_price_minor".to_owned(),
                optional_long(c.reserve_price.map(|m| m.minor())),
            ),
            (
                "min_increment_minor".to_owned(),
                long(c.min_increment.minor()),
            ),
            ("end_time".to_owned(), timestamp(c.end_time)),
        ]),
        AuctionCommand::PlaceBid(c) => fields.extend([
            ("bidder_id".to_owned(), string(c.bidder_id.as_str())),
            ("amount_minor".to_owned(), long(c.amount.minor())),
            ("currency".to_owned(), string(c.amount.currency().as_str())),
            (
                "max_amount_minor".to_owned(),
                optional_long(c.max_amount.map(|m| m.minor())),
            ),
        ]),
        AuctionCommand::Cancel(c) => fields.push(("reason".to_owned(), string(&c.reason))),
        AuctionCommand::Start(_) | AuctionCommand::End(_) => {}
    }
    Value::Record(fields)
}

/// A command record that decoded as Avro but cannot become a domain command,
/// with its envelope when that much could be read (so it still gets an answer).
#[derive(Debug)]
pub struct UnreadableCommand {
    pub error: RuntimeError,
    /// Boxed: a command's envelope is large, and this is the error path.
    pub meta: Option<Box<CommandMeta>>,
}

impl From<RuntimeError> for UnreadableCommand {
    fn from(error: RuntimeError) -> Self {
        Self { error, meta: None }
    }
}

pub fn command_from_avro(record_name: &str, value: Value) -> Result<(AuctionCommand, CommandMeta)> {
    decode_command(record_name, value).map_err(|unreadable| unreadable.error)
}

/// `command_from_avro`, keeping the envelope of a record whose command part
/// is unreadable.
pub fn decode_command(
    record_name: &str,
    value: Value,
) -> std::result::Result<(AuctionCommand, CommandMeta), UnreadableCommand> {
    let short = record_name
        .strip_prefix(NAMESPACE)
        .and_then(|n| n.strip_prefix('.'));
    let record: &'static str = match short {
        Some("CreateAuction") => "CreateAuction",
        Some("StartAuction") => "StartAuction",
        Some("PlaceBid") => "PlaceBid",
        Some("CancelAuction") => "CancelAuction",
        Some("EndAuction") => "EndAuction",
        _ => {
            return Err(RuntimeError::Mapping(format!("unknown command type {record_name}")).into())
        }
    };
    let f = Fields::new(record, value)?;
    let meta = meta_of(&f)?;
    match command_of(record, &f) {
        Ok(command) => Ok((command, meta)),
        Err(error) => Err(UnreadableCommand {
            error,
            meta: Some(Box::new(meta)),
        }),
    }
}

/// The envelope, bounded: every id in it is echoed in the outcome (and the
/// command id is the outcome's lookup key), so an oversized one would make an
/// answer no broker takes. Such a record is poison, answered by no outcome.
fn meta_of(f: &Fields) -> Result<CommandMeta> {
    let bounded = |field: &'static str, value: String| {
        limits::id(field, &value)
            .map(|()| value)
            .map_err(|e| RuntimeError::Mapping(format!("{} {}", e.field, e.problem)))
    };
    let actor = f.optional_string("actor_id")?.unwrap_or_default();
    if !actor.is_empty() {
        limits::id("actor_id", &actor)
            .map_err(|e| RuntimeError::Mapping(format!("{} {}", e.field, e.problem)))?;
    }
    Ok(CommandMeta {
        command_id: bounded("command_id", f.string("command_id")?)?,
        correlation_id: bounded("correlation_id", f.string("correlation_id")?)?,
        tenant_id: TenantId::new(bounded("tenant_id", f.string("tenant_id")?)?),
        // Absent from records written before the field existed: no actor, refused.
        actor_id: UserId::new(actor),
        expected_version: f.optional_version("expected_version")?,
    })
}

fn command_of(record: &str, f: &Fields) -> Result<AuctionCommand> {
    let auction_id = AuctionId::new(f.string("auction_id")?);
    Ok(match record {
        "CreateAuction" => {
            let currency = f.currency("currency")?;
            AuctionCommand::Create(CreateAuction {
                auction_id,
                seller_id: UserId::new(f.string("seller_id")?),
                title: f.string("title")?,
                starting_price: f.money("starting_price_minor", currency)?,
                reserve_price: f.optional_money("reserve_price_minor", currency)?,
                min_increment: f.money("min_increment_minor", currency)?,
                end_time: f.timestamp("end_time")?,
            })
        }
        "StartAuction" => AuctionCommand::Start(StartAuction { auction_id }),
        "PlaceBid" => {
            let currency = f.currency("currency")?;
            AuctionCommand::PlaceBid(PlaceBid {
                auction_id,
                bidder_id: UserId::new(f.string("bidder_id")?),
                amount: f.money("amount_minor", currency)?,
                max_amount: f.optional_money("max_amount_minor", currency)?,
            })
        }
        "CancelAuction" => AuctionCommand::Cancel(CancelAuction {
            auction_id,
            reason: f.string("reason")?,
        }),
        _ => AuctionCommand::End(EndAuction { auction_id }),
    })
}
