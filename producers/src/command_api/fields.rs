//! Reading a JSON object field by field, collecting every problem with the
//! field's name, so one 422 answer lists all of them. Bodies are parsed to a
//! `Value` first: a syntax error is a 400 (not JSON at all), a wrong field is a
//! 422 naming the field; serde's derive would blur the two.

use super::error::ApiError;
use axum::body::Bytes;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

#[derive(Debug)]
pub struct Fields {
    object: Map<String, Value>,
    errors: BTreeMap<String, String>,
}

impl Fields {
    /// The body as an object; an empty body is an empty object (for commands
    /// whose every field is optional).
    pub fn parse(body: &Bytes) -> Result<Self, ApiError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::from_object(Map::new()));
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(object)) => Ok(Self::from_object(object)),
            Ok(_) => Err(ApiError::bad_request(
                "malformed JSON: the body must be a JSON object",
            )),
            Err(error) => Err(ApiError::bad_request(format!("malformed JSON: {error}"))),
        }
    }

    fn from_object(object: Map<String, Value>) -> Self {
        Self {
            object,
            errors: BTreeMap::new(),
        }
    }

    pub fn fail(&mut self, field: &str, reason: impl Into<String>) {
        self.errors
            .entry(field.to_owned())
            .or_insert_with(|| reason.into());
    }

    fn take(&mut self, field: &str) -> Option<Value> {
        self.object.remove(field).filter(|v| !v.is_null())
    }

    pub fn optional_string(&mut self, field: &str) -> Option<String> {
        match self.take(field)? {
            Value::String(s) => Some(s),
            _ => {
                self.fail(field, "must be a string");
                None
            }
        }
    }

    pub fn string(&mut self, field: &str) -> Option<String> {
        let value = self.optional_string(field);
        if value.is_none() {
            self.fail(field, "is required");
        }
        value
    }

    pub fn optional_int(&mut self, field: &str) -> Option<i64> {
        match self.take(field)? {
            Value::Number(n) if n.is_i64() => n.as_i64(),
            _ => {
                self.fail(field, "must be an integer");
                None
            }
        }
    }

    pub fn int(&mut self, field: &str) -> Option<i64> {
        let value = self.optional_int(field);
        if value.is_none() {
            self.fail(field, "is required");
        }
        value
    }

    /// An integer that must be > 0 (prices, amounts, durations).
    pub fn positive(&mut self, field: &str, value: Option<i64>) -> Option<i64> {
        match value {
            Some(v) if v <= 0 => {
                self.fail(field, "must be > 0");
                None
            }
            other => other,
        }
    }

    /// A required, non-empty JSON array of at most `max` items.
    pub fn array(&mut self, field: &str, max: usize) -> Option<Vec<Value>> {
        match self.take(field) {
            Some(Value::Array(items)) if (1..=max).contains(&items.len()) => Some(items),
            Some(Value::Array(_)) => {
                self.fail(field, format!("must hold 1..={max} items"));
                None
            }
            Some(_) => {
                self.fail(field, "must be an array");
                None
            }
            None => {
                self.fail(field, "is required");
                None
            }
        }
    }

    /// The fields of one array item, reported as `field[index].name`.
    pub fn item(&mut self, field: &str, index: usize, item: Value) -> Option<Fields> {
        match item {
            Value::Object(object) => Some(Self::from_object(object)),
            _ => {
                self.fail(&format!("{field}[{index}]"), "must be an object");
                None
            }
        }
    }

    /// Moves an item's errors (and unknown fields) into this body's, prefixed.
    pub fn absorb(&mut self, prefix: &str, mut item: Fields) {
        let unknown: Vec<String> = item.object.keys().cloned().collect();
        for field in unknown {
            item.fail(&field, "unknown field");
        }
        for (field, reason) in item.errors {
            self.fail(&format!("{prefix}.{field}"), reason);
        }
    }

    pub fn optional_version(&mut self, field: &str) -> Option<u64> {
        let value = self.optional_int(field)?;
        match u64::try_from(value) {
            Ok(v) => Some(v),
            Err(_) => {
                self.fail(field, "must be >= 0");
                None
            }
        }
    }

    /// Every field not read is an error: a typo must not be silently ignored.
    /// Returns the collected errors as a 422, or Ok when there were none.
    pub fn finish(mut self) -> Result<(), ApiError> {
        let unknown: Vec<String> = self.object.keys().cloned().collect();
        for field in unknown {
            self.fail(&field, "unknown field");
        }
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid_fields(self.errors))
        }
    }
}

/// An id a client chooses (auction id): 1..=128 characters of `[A-Za-z0-9._:-]`,
/// so it is safe in a URL path and a Kafka key.
pub fn valid_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(json: &str) -> Fields {
        Fields::parse(&Bytes::from(json.to_owned())).unwrap()
    }

    #[test]
    fn syntax_errors_are_400_and_field_errors_422() {
        let error = Fields::parse(&Bytes::from_static(b"{\"amount\": ")).unwrap_err();
        assert_eq!(error.status(), axum::http::StatusCode::BAD_REQUEST);
        let mut f = fields(r#"{"amount": -5, "currency": 3, "extra": true}"#);
        let amount = f.int("amount");
        f.positive("amount", amount);
        f.string("currency");
        f.string("title");
        let error = format!("{:?}", f.finish().unwrap_err());
        for expected in [
            "must be > 0",
            "must be a string",
            "is required",
            "unknown field",
        ] {
            assert!(error.contains(expected), "{error}");
        }
    }

    #[test]
    fn an_empty_body_is_an_empty_object() {
        let mut f = Fields::parse(&Bytes::new()).unwrap();
        assert_eq!(f.optional_version("expected_version"), None);
        assert!(f.finish().is_ok());
    }

    #[test]
    fn ids_are_url_and_key_safe() {
        assert!(valid_id("lot-7.a_b:c"));
        assert!(!valid_id(""));
        assert!(!valid_id("a/b"));
        assert!(!valid_id(&"x".repeat(129)));
    }
}
