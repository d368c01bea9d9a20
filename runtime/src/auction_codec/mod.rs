//! The auction's Avro records (see `schemas/`) mapped to and from domain types.

mod commands;
mod events;
mod outcome;
mod record;

pub use commands::{
    command_from_avro, command_record_name, command_to_avro, decode_command, UnreadableCommand,
    COMMAND_RECORDS,
};
pub use events::{event_from_avro, event_record_name, event_to_avro, EVENT_RECORDS};
pub use outcome::{outcome_from_avro, outcome_to_avro, CommandOutcome, OUTCOME_RECORD};
