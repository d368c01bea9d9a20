//! `POST /orders`: an order.created event for the order saga. The customer is
//! the token's user. The server names the order: from the `Idempotency-Key`
//! (so a retried request names the same order and the saga starts once) or a
//! fresh UUID, both unique across tenants, so no tenant can collide with or
//! pre-empt another's order id; a body naming `order_id` is refused.
//!
//! The total is computed from the lines against the catalogue
//! (`gavel_domain::saga::catalogue`), never taken from the client: an unknown
//! SKU is a 422, and a `total` or `currency` the client sends must equal the
//! computed one (422 naming the computed value otherwise), so a client that
//! believed another price learns it before paying. The saga runs after the
//! answer: 202 with the order id and total (milestones follow on
//! `saga.order.milestones`, correlated by that id).

use super::auth::User;
use super::error::ApiError;
use super::fields::{valid_id, Fields};
use axum::body::Bytes;
use gavel_domain::saga::catalogue::{self, PricingError};
use gavel_domain::saga::order::{OrderCreated, OrderLine};
use gavel_domain::saga::OrderId;
use gavel_domain::{Currency, UserId};

const MAX_LINES: usize = 50;
const MAX_QUANTITY: i64 = 1_000;
const MAX_ADDRESS_CHARS: usize = 300;

/// The order a request asks for, named `order_id` by the server.
pub fn order(user: &User, order_id: String, body: &Bytes) -> Result<OrderCreated, ApiError> {
    let mut f = Fields::parse(body)?;
    if f.optional_string("order_id").is_some() {
        f.fail("order_id", "is chosen by the server; leave it out");
    }
    let lines = lines(&mut f);
    let claimed_total = f.optional_int("total");
    let claimed_total = f.positive("total", claimed_total);
    let claimed_currency =
        f.optional_string("currency")
            .and_then(|code| match Currency::parse(&code) {
                Ok(currency) => Some(currency),
                Err(error) => {
                    f.fail("currency", error.to_string());
                    None
                }
            });
    let address = f.string("shipping_address").unwrap_or_default();
    if address.trim().is_empty() || address.chars().count() > MAX_ADDRESS_CHARS {
        f.fail(
            "shipping_address",
            format!("must be 1..={MAX_ADDRESS_CHARS} characters"),
        );
    }
    let total = match catalogue::order_total(&lines) {
        Ok(total) => Some(total),
        // Already reported by its line, under the line's own index.
        Err(PricingError::UnknownSku { .. }) => None,
        Err(error) => {
            f.fail("lines", error.to_string());
            None
        }
    };
    if let Some(total) = total {
        if claimed_total.is_some_and(|claimed| claimed != total.minor()) {
            f.fail(
                "total",
                format!(
                    "must be the catalogue total {} (or left out)",
                    total.minor()
                ),
            );
        }
        if claimed_currency.is_some_and(|c| c != total.currency()) {
            f.fail(
                "currency",
                format!("must be {} (or left out)", total.currency()),
            );
        }
    }
    f.finish()?;
    let total = total.ok_or_else(|| ApiError::internal("order body passed checks with a gap"))?;
    Ok(OrderCreated {
        order_id: OrderId::new(order_id),
        customer_id: UserId::new(user.id.clone()),
        lines,
        total,
        shipping_address: address,
    })
}

fn lines(f: &mut Fields) -> Vec<OrderLine> {
    let mut lines = Vec::new();
    for (index, item) in f
        .array("lines", MAX_LINES)
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let Some(mut line) = f.item("lines", index, item) else {
            continue;
        };
        let sku = line.string("sku");
        match sku.as_deref() {
            Some(s) if !valid_id(s) => {
                line.fail("sku", "must be 1..=128 characters of A-Z a-z 0-9 . _ : -")
            }
            Some(s) if catalogue::unit_price(s).is_none() => {
                line.fail("sku", format!("unknown SKU {s:?}"))
            }
            _ => {}
        }
        let quantity = line.int("quantity");
        let quantity = match quantity {
            Some(q) if !(1..=MAX_QUANTITY).contains(&q) => {
                line.fail("quantity", format!("must be 1..={MAX_QUANTITY}"));
                None
            }
            other => other,
        };
        if let (Some(sku), Some(quantity)) = (sku, quantity) {
            lines.push(OrderLine {
                sku,
                quantity: quantity as u32,
            });
        }
        f.absorb(&format!("lines[{index}]"), line);
    }
    lines
}
