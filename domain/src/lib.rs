//! Gavel's pure domain: the auction aggregate and the read-model reducers.
//!
//! Nothing here does I/O, async or Kafka. Time enters as a value (`Timestamp`)
//! carried by the command, so every decision is a deterministic function of its
//! inputs and can be replayed.

pub mod auction;
pub mod ids;
pub mod money;
pub mod saga;
pub mod time;
pub mod views;

pub use ids::{AuctionId, TenantId, UserId};
pub use money::{Currency, Money, MoneyError};
pub use time::Timestamp;
