//! Newtype identifiers, so a bidder id can never be passed where an auction id belongs.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(value)
            }
        }
    };
}

/// Lets other domain modules (the sagas) declare their ids the same way.
pub(crate) use string_id;

string_id!(
    /// The aggregate id of an auction; also the Kafka key of its commands and events.
    AuctionId
);
string_id!(
    /// A platform user: seller or bidder.
    UserId
);
string_id!(
    /// The tenant an auction belongs to; commands from another tenant are refused.
    TenantId
);
