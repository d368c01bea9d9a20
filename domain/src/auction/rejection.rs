//! Why a command was refused. Rejections are outcomes the user sees, not faults.

use crate::{AuctionId, Money, MoneyError, Timestamp};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("auction {0} does not exist")]
    AuctionNotFound(AuctionId),
    #[error("auction {0} already exists")]
    AuctionAlreadyExists(AuctionId),
    #[error("invalid auction: {0}")]
    InvalidAuction(String),
    #[error("auction is {actual}, the command needs it {expected}")]
    InvalidStatus {
        expected: &'static str,
        actual: &'static str,
    },
    #[error("the end time {end_time} has passed (now {now})")]
    EndTimePassed { end_time: Timestamp, now: Timestamp },
    #[error("the auction ends at {end_time}, it is only {now}")]
    NotYetEnded { end_time: Timestamp, now: Timestamp },
    #[error("the seller cannot bid on their own auction")]
    SellerCannotBid,
    #[error("bid {amount} is too low: the minimum acceptable bid is {minimum}")]
    BidTooLow { amount: Money, minimum: Money },
    #[error("money: {0}")]
    Money(#[from] MoneyError),
    #[error("an auction with bids cannot be cancelled")]
    HasBids,
    #[error("version conflict: expected {expected}, actual {actual}")]
    VersionConflict { expected: u64, actual: u64 },
    #[error("{field} {problem}")]
    InvalidField {
        field: &'static str,
        problem: String,
    },
    #[error("the command names no acting user")]
    MissingActor,
    #[error("the acting user must be the {role} the command names")]
    ActorMismatch { role: &'static str },
    #[error("only the seller may do this")]
    NotSeller,
}

impl Rejection {
    /// True for a refusal that depends only on the command and who sent it,
    /// never on what the auction has become since: deciding the same command
    /// again gives the same answer, so it need not take a place in the
    /// auction's dedupe window (where a stranger's refused requests would push
    /// out its owner's retry protection).
    pub fn is_about_the_sender(&self) -> bool {
        matches!(
            self,
            Self::MissingActor
                | Self::ActorMismatch { .. }
                | Self::NotSeller
                | Self::InvalidField { .. }
        )
    }

    /// A stable machine-readable code for outcomes and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::AuctionNotFound(_) => "AUCTION_NOT_FOUND",
            Self::AuctionAlreadyExists(_) => "AUCTION_ALREADY_EXISTS",
            Self::InvalidAuction(_) => "INVALID_AUCTION",
            Self::InvalidStatus { .. } => "INVALID_STATUS",
            Self::EndTimePassed { .. } => "END_TIME_PASSED",
            Self::NotYetEnded { .. } => "NOT_YET_ENDED",
            Self::SellerCannotBid => "SELLER_CANNOT_BID",
            Self::BidTooLow { .. } => "BID_TOO_LOW",
            Self::Money(_) => "INVALID_MONEY",
            Self::HasBids => "HAS_BIDS",
            Self::VersionConflict { .. } => "VERSION_CONFLICT",
            Self::InvalidField { .. } => "INVALID_FIELD",
            Self::MissingActor => "MISSING_ACTOR",
            Self::ActorMismatch { .. } => "ACTOR_MISMATCH",
            Self::NotSeller => "NOT_SELLER",
        }
    }
}
