//! Identifiers a saga uses: its own id, the orders it coordinates, the commands it
//! sends (one id per attempt) and the effects those commands stand for.

use crate::ids::string_id;
use serde::{Deserialize, Serialize};
use std::fmt;

string_id!(
    /// One saga instance; also its Kafka key and the correlation id of everything it sends.
    SagaId
);
string_id!(
    /// An order of the order saga (seed 001); the order saga's id is the order id.
    OrderId
);
string_id!(
    /// Unique per attempt of a step or compensation: `{saga}/{step}/{do|undo}/{attempt}`.
    /// A participant echoes it in its reply; re-sending the same attempt reuses it.
    CommandId
);
string_id!(
    /// The id of an inbound message (trigger event, participant reply, timer firing);
    /// it becomes the causation id of whatever the saga sends in response.
    MessageId
);
string_id!(
    /// The same for every attempt of one step, `{saga}/{step}`: a participant applies the
    /// step's effect at most once per key, and its compensation at most once per key.
    EffectKey
);
