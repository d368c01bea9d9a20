//! What the payment saga asks of its participants, and the notices it sends.

use super::{AuctionSold, Split};
use crate::{AuctionId, Money, UserId};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NoticeKind {
    /// To the winner: you bought it for `price`.
    Won { price: Money },
    /// To the seller: sold, `payout` is on its way.
    Sold { payout: Money },
    /// To an outbid bidder.
    Outbid,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub recipient: UserId,
    pub kind: NoticeKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentCommand {
    ChargeWinner {
        auction_id: AuctionId,
        winner_id: UserId,
        amount: Money,
    },
    RefundWinner {
        auction_id: AuctionId,
        winner_id: UserId,
        amount: Money,
    },
    PayoutSeller {
        auction_id: AuctionId,
        seller_id: UserId,
        split: Split,
    },
    ReversePayout {
        auction_id: AuctionId,
        seller_id: UserId,
        split: Split,
    },
    MarkAuctionPaid {
        auction_id: AuctionId,
    },
    UnmarkAuctionPaid {
        auction_id: AuctionId,
    },
    TransferOwnership {
        auction_id: AuctionId,
        from: UserId,
        to: UserId,
    },
    ReverseOwnershipTransfer {
        auction_id: AuctionId,
        from: UserId,
        to: UserId,
    },
    NotifyParties {
        auction_id: AuctionId,
        notices: Vec<Notice>,
    },
}

/// The winner, the seller, then each outbid bidder once (never the winner or seller).
pub(super) fn notices(sold: &AuctionSold, split: Split) -> Vec<Notice> {
    let mut notices = vec![
        Notice {
            recipient: sold.winner_id.clone(),
            kind: NoticeKind::Won {
                price: sold.final_price,
            },
        },
        Notice {
            recipient: sold.seller_id.clone(),
            kind: NoticeKind::Sold {
                payout: split.payout,
            },
        },
    ];
    for user in &sold.outbid_user_ids {
        if !notices.iter().any(|n| &n.recipient == user) {
            notices.push(Notice {
                recipient: user.clone(),
                kind: NoticeKind::Outbid,
            });
        }
    }
    notices
}
