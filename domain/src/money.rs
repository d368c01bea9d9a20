//! Money as integer minor units (cents) with an ISO-4217 currency code. Never `f64`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A three-letter upper-case ISO-4217 code, stored inline so `Money` is `Copy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("currency must be three upper-case letters (ISO-4217), got {0:?}")]
    InvalidCurrency(String),
    #[error("amount must not be negative, got {0}")]
    Negative(i64),
    #[error("currency mismatch: {left} vs {right}")]
    CurrencyMismatch { left: Currency, right: Currency },
    #[error("amount overflow")]
    Overflow,
}

impl Currency {
    pub fn parse(code: &str) -> Result<Self, MoneyError> {
        let bytes = code.as_bytes();
        match bytes {
            [a, b, c] if bytes.iter().all(u8::is_ascii_uppercase) => Ok(Self([*a, *b, *c])),
            _ => Err(MoneyError::InvalidCurrency(code.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        // Constructed only from ASCII upper-case letters, so this cannot fail.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for Currency {
    type Error = MoneyError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Currency> for String {
    fn from(value: Currency) -> Self {
        value.as_str().to_owned()
    }
}

/// A non-negative amount in minor units of one currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    minor: i64,
    currency: Currency,
}

impl Money {
    pub fn new(minor: i64, currency: Currency) -> Result<Self, MoneyError> {
        if minor < 0 {
            return Err(MoneyError::Negative(minor));
        }
        Ok(Self { minor, currency })
    }

    pub fn minor(&self) -> i64 {
        self.minor
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }

    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let minor = self
            .minor
            .checked_add(other.minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money {
            minor,
            currency: self.currency,
        })
    }

    pub fn same_currency(&self, other: Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch {
                left: self.currency,
                right: other.currency,
            })
        }
    }

    /// `basis_points` / 10 000 of this amount, rounded down: the platform fee is
    /// `share(800)` and the seller payout is the remainder, so no cent is lost.
    pub fn share(&self, basis_points: i64) -> Money {
        let minor = (i128::from(self.minor) * i128::from(basis_points) / 10_000) as i64;
        Money {
            minor,
            currency: self.currency,
        }
    }

    /// Splits this amount into `share(basis_points)` (rounded down) and the
    /// remainder; the two always sum to `self`. `basis_points` is clamped to 0..=10 000.
    pub fn split_share(&self, basis_points: i64) -> (Money, Money) {
        let share = self.share(basis_points.clamp(0, 10_000));
        let remainder = Money {
            minor: self.minor - share.minor,
            currency: self.currency,
        };
        (share, remainder)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}.{:02}",
            self.currency,
            self.minor / 100,
            self.minor % 100
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur(minor: i64) -> Money {
        Money::new(minor, Currency::parse("EUR").unwrap()).unwrap()
    }

    #[test]
    fn currency_must_be_three_upper_case_letters() {
        assert!(Currency::parse("EUR").is_ok());
        assert!(Currency::parse("eur").is_err());
        assert!(Currency::parse("EURO").is_err());
        assert!(Currency::parse("").is_err());
    }

    #[test]
    fn negative_amounts_are_refused() {
        assert_eq!(
            Money::new(-1, Currency::parse("EUR").unwrap()),
            Err(MoneyError::Negative(-1))
        );
    }

    #[test]
    fn adding_different_currencies_is_an_error() {
        let usd = Money::new(1, Currency::parse("USD").unwrap()).unwrap();
        assert!(matches!(
            eur(1).checked_add(usd),
            Err(MoneyError::CurrencyMismatch { .. })
        ));
        assert_eq!(eur(150).checked_add(eur(50)), Ok(eur(200)));
    }

    #[test]
    fn commission_split_loses_no_cent() {
        let price = eur(12_345);
        let platform = price.share(800);
        assert_eq!(platform.minor(), 987);
        assert_eq!(price.minor() - platform.minor(), 11_358);
    }

    #[test]
    fn display_shows_major_and_minor_units() {
        assert_eq!(eur(12_345).to_string(), "EUR 123.45");
    }
}
