//! The answer to a command, published to the outcome topic (request/reply).

use super::record::{optional_long, optional_string, string, timestamp, Fields};
use crate::Result;
use apache_avro::types::Value;
use gavel_domain::Timestamp;

pub const OUTCOME_RECORD: &str = "dev.gavel.auction.outcomes.CommandOutcome";

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CommandOutcome {
    pub command_id: String,
    pub correlation_id: String,
    pub tenant_id: String,
    /// The user who sent the command: only they may read this outcome.
    pub actor_id: String,
    pub aggregate_id: String,
    pub command_type: String,
    pub accepted: bool,
    pub new_version: Option<u64>,
    pub event_count: i32,
    pub rejection_code: Option<String>,
    pub reason: Option<String>,
    pub decided_at: Timestamp,
}

pub fn outcome_to_avro(o: &CommandOutcome) -> Value {
    Value::Record(vec![
        ("command_id".to_owned(), string(&o.command_id)),
        ("correlation_id".to_owned(), string(&o.correlation_id)),
        ("tenant_id".to_owned(), string(&o.tenant_id)),
        ("actor_id".to_owned(), string(&o.actor_id)),
        ("aggregate_id".to_owned(), string(&o.aggregate_id)),
        ("command_type".to_owned(), string(&o.command_type)),
        ("accepted".to_owned(), Value::Boolean(o.accepted)),
        (
            "new_version".to_owned(),
            optional_long(o.new_version.map(|v| v as i64)),
        ),
        ("event_count".to_owned(), Value::Int(o.event_count)),
        (
            "rejection_code".to_owned(),
            optional_string(o.rejection_code.as_deref()),
        ),
        ("reason".to_owned(), optional_string(o.reason.as_deref())),
        ("decided_at".to_owned(), timestamp(o.decided_at)),
    ])
}

pub fn outcome_from_avro(value: Value) -> Result<CommandOutcome> {
    let f = Fields::new("CommandOutcome", value)?;
    Ok(CommandOutcome {
        command_id: f.string("command_id")?,
        correlation_id: f.string("correlation_id")?,
        tenant_id: f.string("tenant_id")?,
        actor_id: f.optional_string("actor_id")?.unwrap_or_default(),
        aggregate_id: f.string("aggregate_id")?,
        command_type: f.string("command_type")?,
        accepted: f.boolean("accepted")?,
        new_version: f.optional_version("new_version")?,
        event_count: f.int("event_count")?,
        rejection_code: f.optional_string("rejection_code")?,
        reason: f.optional_string("reason")?,
        decided_at: f.timestamp("decided_at")?,
    })
}
