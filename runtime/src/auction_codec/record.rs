//! Small helpers to build and read Avro records by field name.

use crate::{Result, RuntimeError};
use apache_avro::types::Value;
use gavel_domain::{Currency, Money, Timestamp};

pub fn string(s: &str) -> Value {
    Value::String(s.to_owned())
}

pub fn long(v: i64) -> Value {
    Value::Long(v)
}

pub fn timestamp(t: Timestamp) -> Value {
    Value::TimestampMillis(t.millis())
}

/// `["null", "long"]`.
pub fn optional_long(v: Option<i64>) -> Value {
    match v {
        Some(v) => Value::Union(1, Box::new(Value::Long(v))),
        None => Value::Union(0, Box::new(Value::Null)),
    }
}

/// `["null", "string"]`.
pub fn optional_string(v: Option<&str>) -> Value {
    match v {
        Some(v) => Value::Union(1, Box::new(string(v))),
        None => Value::Union(0, Box::new(Value::Null)),
    }
}

/// Read access to a decoded record's fields, with errors that name the field.
pub struct Fields {
    record: &'static str,
    fields: Vec<(String, Value)>,
}

impl Fields {
    pub fn new(record: &'static str, value: Value) -> Result<Self> {
        match value {
            Value::Record(fields) => Ok(Self { record, fields }),
            other => Err(RuntimeError::Mapping(format!(
                "{record}: expected a record, got {other:?}"
            ))),
        }
    }

    fn raw(&self, name: &str) -> Result<&Value> {
        let value = self
            .fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .ok_or_else(|| self.error(name, "is missing"))?;
        Ok(match value {
            Value::Union(_, inner) => inner,
            other => other,
        })
    }

    fn error(&self, name: &str, problem: &str) -> RuntimeError {
        RuntimeError::Mapping(format!("{}.{name} {problem}", self.record))
    }

    pub fn string(&self, name: &str) -> Result<String> {
        match self.raw(name)? {
            Value::String(s) => Ok(s.clone()),
            _ => Err(self.error(name, "is not a string")),
        }
    }

    pub fn optional_string(&self, name: &str) -> Result<Option<String>> {
        match self.raw(name) {
            Ok(Value::Null) | Err(_) => Ok(None),
            Ok(Value::String(s)) => Ok(Some(s.clone())),
            Ok(_) => Err(self.error(name, "is not a string")),
        }
    }

    pub fn long(&self, name: &str) -> Result<i64> {
        match self.raw(name)? {
            Value::Long(v) | Value::TimestampMillis(v) => Ok(*v),
            Value::Int(v) => Ok(i64::from(*v)),
            _ => Err(self.error(name, "is not a long")),
        }
    }

    pub fn optional_long(&self, name: &str) -> Result<Option<i64>> {
        match self.raw(name) {
            Ok(Value::Null) | Err(_) => Ok(None),
            Ok(_) => self.long(name).map(Some),
        }
    }

    pub fn version(&self, name: &str) -> Result<u64> {
        u64::try_from(self.long(name)?).map_err(|_| self.error(name, "is negative"))
    }

    pub fn optional_version(&self, name: &str) -> Result<Option<u64>> {
        match self.optional_long(name)? {
            Some(v) => u64::try_from(v)
                .map(Some)
                .map_err(|_| self.error(name, "is negative")),
            None => Ok(None),
        }
    }

    pub fn int(&self, name: &str) -> Result<i32> {
        match self.raw(name)? {
            Value::Int(v) => Ok(*v),
            _ => Err(self.error(name, "is not an int")),
        }
    }

    pub fn boolean(&self, name: &str) -> Result<bool> {
        match self.raw(name)? {
            Value::Boolean(b) => Ok(*b),
            _ => Err(self.error(name, "is not a boolean")),
        }
    }

    pub fn timestamp(&self, name: &str) -> Result<Timestamp> {
        self.long(name).map(Timestamp::from_millis)
    }

    pub fn currency(&self, name: &str) -> Result<Currency> {
        Currency::parse(&self.string(name)?).map_err(|e| self.error(name, &e.to_string()))
    }

    pub fn money(&self, name: &str, currency: Currency) -> Result<Money> {
        Money::new(self.long(name)?, currency).map_err(|e| self.error(name, &e.to_string()))
    }

    pub fn optional_money(&self, name: &str, currency: Currency) -> Result<Option<Money>> {
        match self.optional_long(name)? {
            Some(minor) => Money::new(minor, currency)
                .map(Some)
                .map_err(|e| self.error(name, &e.to_string())),
            None => Ok(None),
        }
    }
}
