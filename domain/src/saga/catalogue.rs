//! The price table of the order saga's shop: what each SKU costs. Order totals
//! are computed from it and never taken from a client. A fixed table in code
//! because the shop is a reference domain: a real shop would read its
//! catalogue service here, behind the same two functions.

use super::order::OrderLine;
use crate::{Currency, Money, MoneyError};

/// The currency every catalogue price is in.
pub const CURRENCY: &str = "EUR";

/// (SKU, unit price in minor units of `CURRENCY`, description).
pub const ITEMS: &[(&str, i64, &str)] = &[
    ("sku-0", 1_500, "Postcard set"),
    ("sku-1", 2_900, "Exhibition catalogue"),
    ("sku-2", 4_500, "Art print A3"),
    ("sku-3", 8_900, "Art print A2, framed"),
    ("sku-4", 12_000, "Limited edition lithograph"),
    ("print-a", 4_000, "Gallery print A"),
    ("print-b", 6_500, "Gallery print B"),
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    #[error("line {index}: unknown SKU {sku:?}")]
    UnknownSku { index: usize, sku: String },
    #[error("the order total is out of range")]
    Overflow,
    #[error(transparent)]
    Money(#[from] MoneyError),
}

/// The unit price of `sku`, if the catalogue has it.
pub fn unit_price(sku: &str) -> Option<i64> {
    ITEMS
        .iter()
        .find(|(known, _, _)| *known == sku)
        .map(|(_, price, _)| *price)
}

/// Sum of quantity × unit price over the lines.
pub fn order_total(lines: &[OrderLine]) -> Result<Money, PricingError> {
    let mut total: i64 = 0;
    for (index, line) in lines.iter().enumerate() {
        let price = unit_price(&line.sku).ok_or_else(|| PricingError::UnknownSku {
            index,
            sku: line.sku.clone(),
        })?;
        total = price
            .checked_mul(i64::from(line.quantity))
            .and_then(|amount| total.checked_add(amount))
            .ok_or(PricingError::Overflow)?;
    }
    Ok(Money::new(total, Currency::parse(CURRENCY)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(sku: &str, quantity: u32) -> OrderLine {
        OrderLine {
            sku: sku.into(),
            quantity,
        }
    }

    #[test]
    fn a_total_is_the_sum_of_quantity_times_price() {
        let total = order_total(&[line("sku-0", 2), line("print-a", 1)]).unwrap();
        assert_eq!(total.minor(), 2 * 1_500 + 4_000);
        assert_eq!(total.currency().as_str(), CURRENCY);
    }

    #[test]
    fn unknown_skus_and_overflow_are_refused() {
        assert_eq!(
            order_total(&[line("sku-0", 1), line("nope", 1)]),
            Err(PricingError::UnknownSku {
                index: 1,
                sku: "nope".into()
            })
        );
        let huge = vec![line("sku-4", u32::MAX); 200_000];
        assert_eq!(order_total(&huge), Err(PricingError::Overflow));
    }
}
