//! `POST /orders`: an order.created event for the order saga. The customer is
//! the token's user; with an `Idempotency-Key` the order id derives from it, so
//! a retried request names the same order and the saga starts once. The saga
//! runs after the answer: 202 with the order id (its milestones follow on
//! `saga.order.milestones`, correlated by that id).

use super::auth::User;
use super::error::ApiError;
use super::fields::{valid_id, Fields};
use axum::body::Bytes;
use gavel_domain::saga::order::{OrderCreated, OrderLine};
use gavel_domain::saga::OrderId;
use gavel_domain::{Currency, Money, UserId};

const MAX_LINES: usize = 50;
const MAX_QUANTITY: i64 = 1_000;
const MAX_ADDRESS_CHARS: usize = 300;

pub fn order(user: &User, command_id: &str, body: &Bytes) -> Result<OrderCreated, ApiError> {
    let mut f = Fields::parse(body)?;
    let order_id = match f.optional_string("order_id") {
        Some(id) if !valid_id(&id) => {
            f.fail(
                "order_id",
                "must be 1..=128 characters of A-Z a-z 0-9 . _ : -",
            );
            id
        }
        Some(id) => id,
        None => format!("order-{command_id}"),
    };
    let lines = lines(&mut f);
    let currency = f
        .string("currency")
        .and_then(|code| match Currency::parse(&code) {
            Ok(currency) => Some(currency),
            Err(error) => {
                f.fail("currency", error.to_string());
                None
            }
        });
    let total = f.int("total");
    let total = f.positive("total", total);
    let address = f.string("shipping_address").unwrap_or_default();
    if address.trim().is_empty() || address.chars().count() > MAX_ADDRESS_CHARS {
        f.fail(
            "shipping_address",
            format!("must be 1..={MAX_ADDRESS_CHARS} characters"),
        );
    }
    f.finish()?;
    let (Some(currency), Some(total)) = (currency, total) else {
        return Err(ApiError::internal("order body passed checks with a gap"));
    };
    Ok(OrderCreated {
        order_id: OrderId::new(order_id),
        customer_id: UserId::new(user.id.clone()),
        lines,
        total: Money::new(total, currency).map_err(ApiError::internal)?,
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
        if sku.as_deref().is_some_and(|s| !valid_id(s)) {
            line.fail("sku", "must be 1..=128 characters of A-Z a-z 0-9 . _ : -");
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
