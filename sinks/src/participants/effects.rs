//! What each participant does for each command, inside the caller's Postgres
//! transaction. An effect either applies completely or, refused, not at all:
//! the caller runs it in a savepoint and rolls back a refusal.

use crate::SinkError;
use gavel_domain::saga::order::{OrderCommand, OrderLine};
use gavel_domain::saga::payment::{Notice, PaymentCommand, Split};
use gavel_domain::saga::Participant;
use gavel_domain::{Money, UserId};
use gavel_runtime::saga_wire::StepCommand;
use sha2::{Digest, Sha256};
use tokio_postgres::Transaction;

pub enum Applied {
    /// The participant's reference for the effect (receipt).
    Done(String),
    /// A business refusal: nothing applied, not worth retrying.
    Refused(String),
}

/// Where an effect is written, and what it belongs to.
pub struct Target<'a> {
    pub tx: &'a Transaction<'a>,
    pub schema: &'a str,
    pub command: &'a StepCommand,
    /// Stock a SKU starts with the first time it is reserved.
    pub initial_stock: i32,
}

pub async fn apply(participant: Participant, at: &Target<'_>) -> Result<Applied, SinkError> {
    match at.command.saga_kind.as_str() {
        "payment" => match serde_json::from_value(at.command.command.clone()) {
            Ok(command) => payment(participant, at, command).await,
            Err(e) => Ok(Applied::Refused(format!("not a payment command: {e}"))),
        },
        "order" => match serde_json::from_value(at.command.command.clone()) {
            Ok(command) => order(participant, at, command).await,
            Err(e) => Ok(Applied::Refused(format!("not an order command: {e}"))),
        },
        other => Ok(Applied::Refused(format!("unknown saga kind {other:?}"))),
    }
}

async fn payment(
    participant: Participant,
    at: &Target<'_>,
    command: PaymentCommand,
) -> Result<Applied, SinkError> {
    use PaymentCommand as C;
    match (participant, command) {
        (
            Participant::Payment,
            C::ChargeWinner {
                winner_id, amount, ..
            },
        ) => money(at, &[("charge", &winner_id, amount)]).await,
        (
            Participant::Payment,
            C::RefundWinner {
                winner_id, amount, ..
            },
        ) => money(at, &[("refund", &winner_id, amount)]).await,
        (
            Participant::Payout,
            C::PayoutSeller {
                seller_id, split, ..
            },
        ) => payout(at, &seller_id, split, ["payout", "commission"]).await,
        (
            Participant::Payout,
            C::ReversePayout {
                seller_id, split, ..
            },
        ) => {
            let kinds = ["payout_reversal", "commission_reversal"];
            payout(at, &seller_id, split, kinds).await
        }
        (Participant::Auction, C::MarkAuctionPaid { auction_id }) => {
            mark_paid(at, auction_id.as_str(), true).await
        }
        (Participant::Auction, C::UnmarkAuctionPaid { auction_id }) => {
            mark_paid(at, auction_id.as_str(), false).await
        }
        (
            Participant::Ownership,
            C::TransferOwnership {
                auction_id,
                from,
                to,
            },
        )
        | (
            Participant::Ownership,
            C::ReverseOwnershipTransfer {
                auction_id,
                from,
                to,
            },
        ) => transfer(at, auction_id.as_str(), &from, &to).await,
        (Participant::Notifications, C::NotifyParties { notices, .. }) => {
            notify(at, &notices).await
        }
        (participant, command) => Ok(wrong_participant(participant, &command)),
    }
}

async fn order(
    participant: Participant,
    at: &Target<'_>,
    command: OrderCommand,
) -> Result<Applied, SinkError> {
    use OrderCommand as C;
    match (participant, command) {
        (Participant::Inventory, C::ReserveInventory { lines, .. }) => reserve(at, &lines).await,
        (Participant::Inventory, C::ReleaseInventory { lines, .. }) => release(at, &lines).await,
        (
            Participant::Payment,
            C::ChargePayment {
                customer_id,
                amount,
                ..
            },
        ) => money(at, &[("charge", &customer_id, amount)]).await,
        (
            Participant::Payment,
            C::RefundPayment {
                customer_id,
                amount,
                ..
            },
        ) => money(at, &[("refund", &customer_id, amount)]).await,
        (
            Participant::Shipping,
            C::Ship {
                order_id, address, ..
            },
        ) => ship(at, order_id.as_str(), &address).await,
        (participant, command) => Ok(wrong_participant(participant, &command)),
    }
}

fn wrong_participant(participant: Participant, command: &impl std::fmt::Debug) -> Applied {
    Applied::Refused(format!(
        "{} does not handle {command:?}",
        participant.as_str()
    ))
}

async fn payout(
    at: &Target<'_>,
    seller: &UserId,
    split: Split,
    [payout, commission]: [&str; 2],
) -> Result<Applied, SinkError> {
    let house = UserId::new("house");
    let rows = [
        (payout, seller, split.payout),
        (commission, &house, split.commission),
    ];
    money(at, &rows).await
}

async fn money(at: &Target<'_>, rows: &[(&str, &UserId, Money)]) -> Result<Applied, SinkError> {
    let sql = format!(
        "INSERT INTO {}.money_movements
         (effect_key, saga_kind, saga_id, kind, account, amount_minor, currency)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        at.schema
    );
    let c = at.command;
    for (kind, account, amount) in rows {
        let currency = amount.currency();
        at.tx
            .execute(
                &sql,
                &[
                    &c.effect_key,
                    &c.saga_kind,
                    &c.saga_id,
                    kind,
                    &account.as_str(),
                    &amount.minor(),
                    &currency.as_str(),
                ],
            )
            .await?;
    }
    Ok(Applied::Done(format!("{}:{}", rows[0].0, c.effect_key)))
}

async fn mark_paid(at: &Target<'_>, auction: &str, paid: bool) -> Result<Applied, SinkError> {
    let sql = format!(
        "INSERT INTO {}.auction_payments (auction_id, paid) VALUES ($1, $2)
         ON CONFLICT (auction_id) DO UPDATE SET paid = $2, changed_at = now()",
        at.schema
    );
    at.tx.execute(&sql, &[&auction, &paid]).await?;
    Ok(Applied::Done(format!("paid={paid}")))
}

/// Appends to the ownership ledger's hash chain; one writer at a time (an
/// advisory lock for the transaction) so the chain never forks.
async fn transfer(
    at: &Target<'_>,
    auction: &str,
    from: &UserId,
    to: &UserId,
) -> Result<Applied, SinkError> {
    let s = at.schema;
    at.tx
        .execute(
            "SELECT pg_advisory_xact_lock($1)",
            &[&gavel_runtime::postgres::advisory_key(&format!(
                "{s}.ownership_ledger"
            ))],
        )
        .await?;
    let head = at
        .tx
        .query_opt(
            &format!("SELECT hash FROM {s}.ownership_ledger ORDER BY seq DESC LIMIT 1"),
            &[],
        )
        .await?;
    let prev: String = head.map_or_else(|| "genesis".to_owned(), |row| row.get(0));
    let c = at.command;
    let hash = ledger_hash(
        &prev,
        &[
            auction,
            from.as_str(),
            to.as_str(),
            &c.effect_key,
            &c.direction,
        ],
    );
    at.tx
        .execute(
            &format!(
                "INSERT INTO {s}.ownership_ledger
                 (auction_id, from_user, to_user, effect_key, direction, prev_hash, hash)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)"
            ),
            &[
                &auction,
                &from.as_str(),
                &to.as_str(),
                &c.effect_key,
                &c.direction,
                &prev,
                &hash,
            ],
        )
        .await?;
    Ok(Applied::Done(hash))
}

/// sha256(prev_hash | field | field ...), hex.
pub fn ledger_hash(prev: &str, fields: &[&str]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(prev.as_bytes());
    for field in fields {
        hasher.update(b"|");
        hasher.update(field.as_bytes());
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn notify(at: &Target<'_>, notices: &[Notice]) -> Result<Applied, SinkError> {
    let sql = format!(
        "INSERT INTO {}.notifications (effect_key, recipient, kind, body) VALUES ($1, $2, $3, $4::text::jsonb)",
        at.schema
    );
    for notice in notices {
        let value =
            serde_json::to_value(&notice.kind).map_err(|e| SinkError::Encode(e.to_string()))?;
        // Externally tagged: `"Outbid"` or `{"Won": {...}}`.
        let kind = value
            .as_object()
            .and_then(|o| o.keys().next().cloned())
            .or_else(|| value.as_str().map(str::to_owned))
            .unwrap_or_default();
        let body = value.to_string();
        at.tx
            .execute(
                &sql,
                &[
                    &at.command.effect_key,
                    &notice.recipient.as_str(),
                    &kind,
                    &body,
                ],
            )
            .await?;
    }
    Ok(Applied::Done(format!("{} notices", notices.len())))
}

async fn reserve(at: &Target<'_>, lines: &[OrderLine]) -> Result<Applied, SinkError> {
    let s = at.schema;
    for line in lines {
        at.tx
            .execute(
                &format!("INSERT INTO {s}.inventory_stock (sku, available) VALUES ($1, $2) ON CONFLICT DO NOTHING"),
                &[&line.sku, &at.initial_stock],
            )
            .await?;
        let quantity = stock_quantity(line)?;
        let taken = at
            .tx
            .execute(
                &format!("UPDATE {s}.inventory_stock SET available = available - $2 WHERE sku = $1 AND available >= $2"),
                &[&line.sku, &quantity],
            )
            .await?;
        if taken == 0 {
            return Ok(Applied::Refused(format!(
                "insufficient stock for {}",
                line.sku
            )));
        }
        stock_movement(at, &line.sku, -quantity).await?;
    }
    Ok(Applied::Done(format!(
        "reservation:{}",
        at.command.effect_key
    )))
}

async fn release(at: &Target<'_>, lines: &[OrderLine]) -> Result<Applied, SinkError> {
    let s = at.schema;
    for line in lines {
        let quantity = stock_quantity(line)?;
        at.tx
            .execute(
                &format!(
                    "UPDATE {s}.inventory_stock SET available = available + $2 WHERE sku = $1"
                ),
                &[&line.sku, &quantity],
            )
            .await?;
        stock_movement(at, &line.sku, quantity).await?;
    }
    Ok(Applied::Done(format!("released:{}", at.command.effect_key)))
}

/// A line's quantity for the integer stock columns: above i32::MAX a cast
/// would turn a reservation into a negative one, which adds stock.
fn stock_quantity(line: &OrderLine) -> Result<i32, SinkError> {
    i32::try_from(line.quantity).map_err(|_| {
        SinkError::Encode(format!(
            "quantity {} of {} does not fit the stock column",
            line.quantity, line.sku
        ))
    })
}

async fn stock_movement(at: &Target<'_>, sku: &str, quantity: i32) -> Result<(), SinkError> {
    at.tx
        .execute(
            &format!(
                "INSERT INTO {}.inventory_movements (effect_key, sku, quantity) VALUES ($1, $2, $3)",
                at.schema
            ),
            &[&at.command.effect_key, &sku, &quantity],
        )
        .await?;
    Ok(())
}

async fn ship(at: &Target<'_>, order: &str, address: &str) -> Result<Applied, SinkError> {
    let tracking = format!("TRK-{}", &ledger_hash(order, &[address])[..12]);
    at.tx
        .execute(
            &format!(
                "INSERT INTO {}.shipments (order_id, effect_key, tracking, address) VALUES ($1, $2, $3, $4)",
                at.schema
            ),
            &[&order, &at.command.effect_key, &tracking, &address],
        )
        .await?;
    Ok(Applied::Done(tracking))
}
