//! Avro values to and from the serde JSON shape of a Rust type, guided by the
//! record's schema. The saga contract types are plain serde structs and
//! enums; their `.avsc` mirrors that shape, so one mapping serves them all:
//! a struct is a record, an externally tagged enum variant (`{"Ship": {..}}`)
//! is the union branch whose record has the variant's name, an `Option` is a
//! union of null and one type (untagged), and a unit enum is a string (kept a
//! string on the wire, so a new symbol never breaks an older reader).

use super::{CachedSchema, Decoded};
use crate::{Result, RuntimeError};
use apache_avro::schema::{Name, NamesRef, ResolvedSchema, Schema};
use apache_avro::types::Value;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Number, Value as Json};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// A record schema with every named type it defines, for [`to_avro`] and [`from_avro`].
pub struct Shape<'s> {
    root: &'s Schema,
    names: NamesRef<'s>,
}

impl<'s> Shape<'s> {
    pub fn new(root: &'s Schema) -> Result<Self> {
        let resolved = ResolvedSchema::new(root)?;
        Ok(Self {
            root,
            names: resolved.get_names().clone(),
        })
    }

    pub fn schema(&self) -> &'s Schema {
        self.root
    }

    /// The Avro value of `json` (a serde JSON value of the mirrored type).
    pub fn to_avro(&self, json: &Json) -> Result<Value> {
        self.value_of(json, self.root, &At::Root)
    }

    /// The serde JSON value of `value` (decoded with, or resolved to, this schema).
    pub fn from_avro(&self, value: Value) -> Result<Json> {
        self.json_of(value, self.root, &At::Root)
    }

    fn named(&self, name: &Name) -> Result<&'s Schema> {
        self.names
            .get(name)
            .copied()
            .ok_or_else(|| mismatch(&At::Root, &format!("unknown type {}", name.fullname(None))))
    }

    fn value_of(&self, json: &Json, schema: &'s Schema, at: &At<'_>) -> Result<Value> {
        Ok(match (schema, json) {
            (Schema::Ref { name }, _) => return self.value_of(json, self.named(name)?, at),
            (Schema::Null, Json::Null) => Value::Null,
            (Schema::Boolean, Json::Bool(b)) => Value::Boolean(*b),
            (Schema::Int, Json::Number(n)) => Value::Int(
                n.as_i64()
                    .and_then(|v| i32::try_from(v).ok())
                    .ok_or_else(|| mismatch(at, "an int"))?,
            ),
            (Schema::Long, Json::Number(n)) => {
                Value::Long(n.as_i64().ok_or_else(|| mismatch(at, "a long"))?)
            }
            (Schema::String, Json::String(s)) => Value::String(s.clone()),
            (Schema::Array(array), Json::Array(items)) => Value::Array(
                items
                    .iter()
                    .map(|item| self.value_of(item, &array.items, at))
                    .collect::<Result<_>>()?,
            ),
            (Schema::Record(record), Json::Object(object)) => Value::Record(
                record
                    .fields
                    .iter()
                    .map(|field| {
                        let path = At::Field(at, &field.name);
                        let json = object.get(&field.name).unwrap_or(&Json::Null);
                        Ok((
                            field.name.clone(),
                            self.value_of(json, &field.schema, &path)?,
                        ))
                    })
                    .collect::<Result<_>>()?,
            ),
            (Schema::Union(union), _) => {
                let (index, branch, inner) = self.branch_for(union.variants(), json, at)?;
                Value::Union(index, Box::new(self.value_of(inner, branch, at)?))
            }
            _ => return Err(mismatch(at, &format!("{json} as {schema:?}"))),
        })
    }

    /// The union branch of `json`: null for null, the other branch of an
    /// optional (`["null", T]`), the record named by an externally tagged
    /// variant's key, or else the first scalar or array branch of its kind.
    fn branch_for<'j>(
        &self,
        variants: &'s [Schema],
        json: &'j Json,
        at: &At<'_>,
    ) -> Result<(u32, &'s Schema, &'j Json)> {
        if let (Some(index), false) = (optional(variants), json.is_null()) {
            return Ok((index, &variants[index as usize], json));
        }
        let mut found = None;
        for (index, variant) in variants.iter().enumerate() {
            let resolved = self.resolve(variant)?;
            let candidate = match (resolved, json) {
                (Schema::Null, Json::Null) => Some(json),
                (Schema::Null, _) | (_, Json::Null) => None,
                (Schema::Record(record), Json::Object(object)) if object.len() == 1 => {
                    object.get(record.name.name())
                }
                (Schema::Record(_), _) => None,
                (Schema::Boolean, Json::Bool(_))
                | (Schema::Int | Schema::Long, Json::Number(_))
                | (Schema::String, Json::String(_))
                | (Schema::Array(_), Json::Array(_)) => Some(json),
                _ => None,
            };
            if let Some(inner) = candidate {
                found = Some((index, variant, inner));
                break;
            }
        }
        let (index, variant, inner) =
            found.ok_or_else(|| mismatch(at, &format!("a union branch for {json}")))?;
        let index = u32::try_from(index).map_err(|_| mismatch(at, "a union of few branches"))?;
        Ok((index, variant, inner))
    }

    fn resolve(&self, schema: &'s Schema) -> Result<&'s Schema> {
        match schema {
            Schema::Ref { name } => self.named(name),
            other => Ok(other),
        }
    }

    fn json_of(&self, value: Value, schema: &'s Schema, at: &At<'_>) -> Result<Json> {
        let schema = self.resolve(schema)?;
        Ok(match (schema, value) {
            (_, Value::Null) => Json::Null,
            (_, Value::Boolean(b)) => Json::Bool(b),
            (_, Value::Int(v)) => Json::Number(Number::from(v)),
            (_, Value::Long(v)) => Json::Number(Number::from(v)),
            (_, Value::String(s) | Value::Enum(_, s)) => Json::String(s),
            (Schema::Array(array), Value::Array(items)) => Json::Array(
                items
                    .into_iter()
                    .map(|item| self.json_of(item, &array.items, at))
                    .collect::<Result<_>>()?,
            ),
            (Schema::Record(record), Value::Record(fields)) => {
                let mut object = Map::with_capacity(fields.len());
                for (name, value) in fields {
                    let field = record
                        .fields
                        .iter()
                        .find(|f| f.name == name)
                        .ok_or_else(|| mismatch(at, &format!("no field {name}")))?;
                    let json = self.json_of(value, &field.schema, &At::Field(at, &name))?;
                    object.insert(name, json);
                }
                Json::Object(object)
            }
            (Schema::Union(union), Value::Union(index, inner)) => {
                let branch = usize::try_from(index)
                    .ok()
                    .and_then(|i| union.variants().get(i))
                    .ok_or_else(|| mismatch(at, "a known union branch"))?;
                let json = self.json_of(*inner, branch, at)?;
                match self.resolve(branch)? {
                    Schema::Record(record) if optional(union.variants()).is_none() => {
                        let mut tagged = Map::with_capacity(1);
                        tagged.insert(record.name.name().to_owned(), json);
                        Json::Object(tagged)
                    }
                    _ => json,
                }
            }
            (schema, value) => {
                return Err(mismatch(at, &format!("{value:?} as {schema:?}")));
            }
        })
    }
}

/// Wire bytes of `record` (any serde type its schema mirrors) written with
/// `writer`, this build's schema of the record under its subject.
pub fn encode<T: Serialize>(writer: &CachedSchema, record: &T) -> Result<Vec<u8>> {
    let json = serde_json::to_value(record).map_err(|e| RuntimeError::Avro(e.to_string()))?;
    let value = shape(&writer.name)?.to_avro(&json)?;
    writer.encode(&value)
}

/// The record `decoded` holds, `expected` being its record name (a record of
/// another type on the topic is refused, not misread).
pub fn decode<T: DeserializeOwned>(decoded: Decoded, expected: &str) -> Result<T> {
    if decoded.schema.name != expected {
        return Err(RuntimeError::Avro(format!(
            "expected a {expected}, got a {}",
            decoded.schema.name
        )));
    }
    let json = shape(expected)?.from_avro(decoded.value)?;
    serde_json::from_value(json).map_err(|e| RuntimeError::Avro(format!("{expected}: {e}")))
}

/// The shape of this build's schema of `full_name`, built once per record.
pub fn shape(full_name: &str) -> Result<&'static Shape<'static>> {
    static SHAPES: OnceLock<Mutex<HashMap<String, &'static Shape<'static>>>> = OnceLock::new();
    let shapes = SHAPES.get_or_init(Mutex::default);
    let mut shapes = shapes
        .lock()
        .map_err(|_| RuntimeError::Avro("shape cache poisoned".into()))?;
    if let Some(found) = shapes.get(full_name) {
        return Ok(found);
    }
    let schema = super::reader::reader_schema(full_name)
        .ok_or_else(|| RuntimeError::Avro(format!("this build has no schema of {full_name}")))?;
    // One per compiled-in record, living as long as the process.
    let built: &'static Shape<'static> = Box::leak(Box::new(Shape::new(schema)?));
    shapes.insert(full_name.to_owned(), built);
    Ok(built)
}

/// The value branch of an optional: a union of null and exactly one other type.
fn optional(variants: &[Schema]) -> Option<u32> {
    match variants {
        [Schema::Null, _] => Some(1),
        [_, Schema::Null] => Some(0),
        _ => None,
    }
}

fn mismatch(at: &At<'_>, expected: &str) -> RuntimeError {
    match at {
        At::Root => RuntimeError::Avro(format!("record: expected {expected}")),
        field => RuntimeError::Avro(format!("{field}: expected {expected}")),
    }
}

/// Where in a record a value sits: a chain of field names on the stack,
/// spelled out (`.body.lines`) only when an error names it.
enum At<'p> {
    Root,
    Field(&'p At<'p>, &'p str),
}

impl std::fmt::Display for At<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Root => Ok(()),
            Self::Field(parent, name) => write!(f, "{parent}.{name}"),
        }
    }
}

/// `value` encoded with `schema` and decoded again (for tests).
#[cfg(test)]
pub(crate) fn written_and_read(schema: &Schema, value: &Value) -> Value {
    use apache_avro::reader::datum::GenericDatumReader;
    use apache_avro::writer::datum::GenericDatumWriter;
    let mut bytes = Vec::new();
    GenericDatumWriter::builder(schema)
        .build()
        .expect("writer")
        .write_value_ref(&mut bytes, value)
        .expect("valid");
    GenericDatumReader::builder(schema)
        .build()
        .expect("reader")
        .read_value(&mut bytes.as_slice())
        .expect("read")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SCHEMA: &str = r#"{
      "type": "record", "name": "Envelope", "namespace": "test",
      "fields": [
        {"name": "id", "type": "string"},
        {"name": "attempt", "type": "int"},
        {"name": "note", "type": ["null", "string"], "default": null},
        {"name": "price", "type": ["null", {"type": "record", "name": "Money", "fields": [
          {"name": "minor", "type": "long"}, {"name": "currency", "type": "string"}]}], "default": null},
        {"name": "body", "type": [
          {"type": "record", "name": "Ship", "fields": [
            {"name": "lines", "type": {"type": "array", "items": {
              "type": "record", "name": "Line", "fields": [
                {"name": "sku", "type": "string"}, {"name": "quantity", "type": "long"}]}}}]},
          {"type": "record", "name": "Refund", "fields": [
            {"name": "lines", "type": {"type": "array", "items": "test.Line"}},
            {"name": "urgent", "type": "boolean"}]}
        ]}
      ]
    }"#;

    fn shape_of(schema: &Schema) -> Shape<'_> {
        Shape::new(schema).expect("shape")
    }

    #[test]
    fn a_tagged_variant_goes_to_its_branch_and_comes_back_the_same() {
        let schema = Schema::parse_str(SCHEMA).expect("schema");
        let shape = shape_of(&schema);
        let original = json!({
            "id": "s-1", "attempt": 2, "note": "n", "price": {"minor": 5, "currency": "EUR"},
            "body": {"Refund": {"lines": [{"sku": "A", "quantity": 3}], "urgent": true}}
        });
        let value = shape.to_avro(&original).expect("to avro");
        assert!(value.validate(&schema), "{value:?}");
        let read = written_and_read(&schema, &value);
        assert_eq!(shape.from_avro(read).expect("from avro"), original);
    }

    #[test]
    fn a_wrong_shape_is_refused_with_where() {
        let schema = Schema::parse_str(SCHEMA).expect("schema");
        let shape = shape_of(&schema);
        for (bad, place) in [
            (
                json!({"id": "s", "attempt": 5_000_000_000_i64, "body": {"Ship": {"lines": []}}}),
                ".attempt",
            ),
            (
                json!({"id": "s", "attempt": 1, "body": {"Explode": {}}}),
                ".body",
            ),
            (
                json!({"id": "s", "attempt": 1, "body": {"Ship": {"lines": [{"sku": 1}]}}}),
                ".body.lines",
            ),
        ] {
            let error = shape.to_avro(&bad).expect_err("refused").to_string();
            assert!(error.contains(place), "{error}");
        }
    }
}
