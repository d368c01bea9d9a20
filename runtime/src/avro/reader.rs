//! Reader schemas: each consumer reads with the schemas this build was made
//! with (`schemas/`, compiled in), whatever version a producer wrote. A
//! writer schema is resolved against the reader schema of the same record
//! once, when its id is first seen; decoding a record then costs the writer's
//! decode plus, only when the two differ, moving fields into the reader's
//! order, filling defaults for fields the writer lacks and dropping fields
//! the reader does not know. (apache-avro's own `resolve` rebuilds every
//! record through a hash map; the plan here is made once per writer id.)

use super::deep::{Conversion, Sides, Types};
use crate::{Result, RuntimeError};
use apache_avro::schema::{RecordField, RecordSchema};
use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::types::Value;
use apache_avro::Schema;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// The current version of every record in `schemas/`.
const READER_SCHEMAS: [&str; 23] = [
    include_str!("../../../schemas/commands/CancelAuction.avsc"),
    include_str!("../../../schemas/commands/CreateAuction.avsc"),
    include_str!("../../../schemas/commands/EndAuction.avsc"),
    include_str!("../../../schemas/commands/PlaceBid.avsc"),
    include_str!("../../../schemas/commands/StartAuction.avsc"),
    include_str!("../../../schemas/events/AuctionCancelled.avsc"),
    include_str!("../../../schemas/events/AuctionCreated.avsc"),
    include_str!("../../../schemas/events/AuctionEnded.avsc"),
    include_str!("../../../schemas/events/AuctionStarted.avsc"),
    include_str!("../../../schemas/events/BidPlaced.avsc"),
    include_str!("../../../schemas/outcomes/CommandOutcome.avsc"),
    include_str!("../../../schemas/orders/OrderCreated.avsc"),
    include_str!("../../../schemas/views/AuctionDetails.avsc"),
    include_str!("../../../schemas/views/AuctionListItem.avsc"),
    include_str!("../../../schemas/views/UserBid.avsc"),
    include_str!("../../../schemas/saga-commands/StepCommand.avsc"),
    include_str!("../../../schemas/saga-replies/StepReply.avsc"),
    include_str!("../../../schemas/saga-milestones/InventoryReleased.avsc"),
    include_str!("../../../schemas/saga-milestones/InventoryReserved.avsc"),
    include_str!("../../../schemas/saga-milestones/OrderPaid.avsc"),
    include_str!("../../../schemas/saga-milestones/OrderShipped.avsc"),
    include_str!("../../../schemas/saga-milestones/PaymentRefunded.avsc"),
    include_str!("../../../schemas/saga-failed/SagaFailed.avsc"),
];

/// This build's schema of record `full_name`, if it has one.
pub fn reader_schema(full_name: &str) -> Option<&'static Schema> {
    own_schema(full_name).map(|(schema, _)| schema)
}

/// This build's schema of `full_name` and its text (what it writes with,
/// and what the registry is asked to find).
pub fn own_schema(full_name: &str) -> Option<(&'static Schema, &'static str)> {
    compiled_in()
        .get(full_name)
        .map(|(schema, text)| (schema, *text))
}

/// Every compiled-in schema by record name, parsed once.
fn compiled_in() -> &'static HashMap<String, (Schema, &'static str)> {
    static SCHEMAS: OnceLock<HashMap<String, (Schema, &'static str)>> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        READER_SCHEMAS
            .iter()
            .filter_map(|text| Schema::parse_str(text).ok().map(|schema| (schema, *text)))
            .filter_map(|(schema, text)| Some((record_name(&schema)?, (schema, text))))
            .collect()
    })
}

pub fn record_name(schema: &Schema) -> Option<String> {
    match schema {
        Schema::Record(record) => Some(record.name.fullname(None)),
        _ => None,
    }
}

/// How a record written with one schema becomes the reader's record.
#[derive(Debug)]
pub enum Resolution {
    /// The same fields in the same order: the writer's record is the reader's.
    Same,
    /// The writer's fields are the reader's first ones, as they are: the
    /// reader's further fields follow with their defaults (the usual change,
    /// a field added at the end), appended in place.
    Append(Vec<(String, Value)>),
    /// One source per reader field, in the reader's order, with its name.
    Plan(Vec<(String, Source)>),
}

#[derive(Debug)]
pub enum Source {
    /// The writer's field at this index, as it is.
    Move(usize),
    /// The writer's field at this index, converted to the reader's type
    /// (int to long, a value into a union, a nested record or union branch
    /// that changed, each found by name).
    Promote(usize, Box<Conversion>),
    /// Absent from the writer: the reader field's default.
    Default(Value),
}

impl Resolution {
    /// Resolves `writer` against `reader` once; an incompatible pair is an
    /// error that says why (the registry's compatibility rules should have
    /// refused it, so a record under it is poison, not a reason to stop).
    pub fn new(writer: &Schema, reader: &Schema) -> Result<Self> {
        let (Schema::Record(w), Schema::Record(r)) = (writer, reader) else {
            return Err(RuntimeError::Avro(
                "reader and writer must be records".into(),
            ));
        };
        // Schema equality compares types field by field, logical types
        // included (the canonical form would call a long and a
        // timestamp-millis the same).
        if writer == reader {
            return Ok(Self::Same);
        }
        SchemaCompatibility::can_read(writer, reader).map_err(|error| {
            RuntimeError::Avro(format!(
                "{} as written cannot be read by this build: {error}",
                r.name.fullname(None)
            ))
        })?;
        let writer_types = Arc::new(Types::of(writer)?);
        let reader_types = Arc::new(Types::of(reader)?);
        let plan = r
            .fields
            .iter()
            .map(|field| {
                let source = source_of(w, field, &writer_types, &reader_types)?;
                Ok((field.name.clone(), source))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self::appending(&plan, &w.fields).unwrap_or(Self::Plan(plan)))
    }

    /// `Append` when `plan` keeps all `written` fields in place and only adds
    /// defaults after them.
    fn appending(plan: &[(String, Source)], written: &[RecordField]) -> Option<Self> {
        // In place: the same field at the same index under the same name (a
        // field matched by an alias must take the reader's name: Plan does).
        let in_place = plan.len() >= written.len()
            && plan[..written.len()]
                .iter()
                .enumerate()
                .all(|(i, (name, source))| {
                    matches!(source, Source::Move(j) if *j == i) && written[i].name == *name
                });
        let defaults = plan[written.len().min(plan.len())..]
            .iter()
            .map(|(name, source)| match source {
                Source::Default(value) => Some((name.clone(), value.clone())),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?;
        in_place.then_some(Self::Append(defaults))
    }

    /// The reader's record from the writer's decoded `value`.
    pub fn apply(&self, value: Value) -> Result<Value> {
        let sources = match self {
            Self::Same => return Ok(value),
            Self::Append(defaults) => return Ok(append(value, defaults)),
            Self::Plan(sources) => sources,
        };
        let Value::Record(mut written) = value else {
            return Err(RuntimeError::Avro(format!(
                "expected a record, got {value:?}"
            )));
        };
        let mut fields = Vec::with_capacity(sources.len());
        for (name, source) in sources {
            let field = match source {
                Source::Move(i) => take(&mut written, *i, name)?,
                Source::Promote(i, conversion) => {
                    let (name, value) = take(&mut written, *i, name)?;
                    (name, conversion.apply(value)?)
                }
                Source::Default(value) => (name.clone(), value.clone()),
            };
            fields.push(field);
        }
        Ok(Value::Record(fields))
    }
}

fn append(value: Value, defaults: &[(String, Value)]) -> Value {
    match value {
        Value::Record(mut fields) => {
            fields.extend_from_slice(defaults);
            Value::Record(fields)
        }
        other => other,
    }
}

/// The writer's field `i` under the reader's `name` (the writer's own name
/// string is reused unless the reader renamed the field by an alias).
fn take(written: &mut [(String, Value)], i: usize, name: &str) -> Result<(String, Value)> {
    let slot = written
        .get_mut(i)
        .ok_or_else(|| RuntimeError::Avro(format!("the record lacks field {name}")))?;
    let (mut own, value) = std::mem::replace(slot, (String::new(), Value::Null));
    if own != name {
        name.clone_into(&mut own);
    }
    Ok((own, value))
}

fn source_of(
    writer: &RecordSchema,
    field: &RecordField,
    writer_types: &Arc<Types>,
    reader_types: &Arc<Types>,
) -> Result<Source> {
    // The writer's field of the same name, else one the reader names as an
    // alias (the Avro specification's order).
    let found = writer
        .fields
        .iter()
        .position(|w| w.name == field.name)
        .or_else(|| {
            writer
                .fields
                .iter()
                .position(|w| field.aliases.contains(&w.name))
        });
    let sides = Sides {
        writer: writer_types,
        reader: reader_types,
    };
    match found {
        // Compared through each side's named types: a reference to a type
        // defined in another field is the same only if that type is.
        Some(i) if sides.same(&writer.fields[i].schema, &field.schema) => Ok(Source::Move(i)),
        Some(i) => Ok(Source::Promote(
            i,
            Box::new(Conversion {
                writer: writer.fields[i].schema.clone(),
                reader: field.schema.clone(),
                writer_types: Arc::clone(writer_types),
                reader_types: Arc::clone(reader_types),
            }),
        )),
        None => default_of(field).map(Source::Default),
    }
}

/// The reader field's default as a value of its type (a union's default is
/// of its first branch).
pub(super) fn default_of(field: &RecordField) -> Result<Value> {
    let missing = || RuntimeError::Avro(format!("field {} has no default", field.name));
    let json = field.default.clone().ok_or_else(missing)?;
    let value = Value::try_from(json)?;
    Ok(match &field.schema {
        Schema::Union(union) => {
            let first = union.variants().first().ok_or_else(missing)?;
            Value::Union(0, Box::new(value.resolve(first)?))
        }
        other => value.resolve(other)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::reader::datum::GenericDatumReader;
    use apache_avro::writer::datum::GenericDatumWriter;

    const PLACE_BID_V1: &str = include_str!("../../../schemas/history/PlaceBid.v1.avsc");
    const BID_PLACED_V1: &str = include_str!("../../../schemas/history/BidPlaced.v1.avsc");

    fn parse(text: &str) -> Schema {
        Schema::parse_str(text).unwrap()
    }

    /// Encodes `value` with `writer` and decodes it as written.
    fn written(writer: &Schema, value: &Value) -> Value {
        let mut bytes = Vec::new();
        GenericDatumWriter::builder(writer)
            .build()
            .unwrap()
            .write_value_ref(&mut bytes, value)
            .unwrap();
        GenericDatumReader::builder(writer)
            .build()
            .unwrap()
            .read_value(&mut &bytes[..])
            .unwrap()
    }

    /// `written`, then resolved to this build's schema of the record.
    fn round_trip(writer: &Schema, value: Value) -> Result<Value> {
        let reader = reader_schema(&record_name(writer).unwrap()).unwrap();
        Resolution::new(writer, reader)?.apply(written(writer, &value))
    }

    fn field<'a>(record: &'a Value, name: &str) -> &'a Value {
        let Value::Record(fields) = record else {
            panic!("not a record: {record:?}")
        };
        &fields.iter().find(|(n, _)| n == name).unwrap().1
    }

    fn v1_bid() -> Value {
        Value::Record(
            [
                ("command_id", Value::String("c-1".into())),
                ("correlation_id", Value::String("c-1".into())),
                ("tenant_id", Value::String("t".into())),
                ("auction_id", Value::String("a".into())),
                ("expected_version", Value::Union(0, Box::new(Value::Null))),
                ("actor_id", Value::String("ann".into())),
                ("bidder_id", Value::String("ann".into())),
                ("amount_minor", Value::Long(10_500)),
                ("currency", Value::String("EUR".into())),
            ]
            .into_iter()
            .map(|(n, v)| (n.to_owned(), v))
            .collect(),
        )
    }

    #[test]
    fn every_schema_in_schemas_is_compiled_in_as_a_reader() {
        for text in READER_SCHEMAS {
            let schema = parse(text);
            let name = record_name(&schema).unwrap();
            assert!(reader_schema(&name).is_some(), "{name}");
            assert_eq!(own_schema(&name).map(|(_, own)| own), Some(text));
        }
        // A file added to `schemas/` must be added to READER_SCHEMAS too.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
        let files: usize = std::fs::read_dir(&dir)
            .unwrap()
            .map(|folder| folder.unwrap().path())
            .filter(|folder| !folder.ends_with("history"))
            .map(|folder| std::fs::read_dir(folder).unwrap().count())
            .sum();
        assert_eq!(files, READER_SCHEMAS.len());
    }

    #[test]
    fn the_current_schema_reads_as_written() {
        let reader = reader_schema("dev.gavel.auction.commands.PlaceBid").unwrap();
        assert!(matches!(
            Resolution::new(reader, reader).unwrap(),
            Resolution::Same
        ));
    }

    #[test]
    fn a_v1_bid_gets_the_v2_default_for_its_missing_maximum() {
        let v1 = parse(PLACE_BID_V1);
        let reader = reader_schema("dev.gavel.auction.commands.PlaceBid").unwrap();
        assert!(matches!(
            Resolution::new(&v1, reader).unwrap(),
            Resolution::Append(_)
        ));
        let read = round_trip(&v1, v1_bid()).unwrap();
        assert_eq!(
            field(&read, "max_amount_minor"),
            &Value::Union(0, Box::new(Value::Null))
        );
        assert_eq!(field(&read, "amount_minor"), &Value::Long(10_500));
        let v2 = reader_schema("dev.gavel.auction.commands.PlaceBid").unwrap();
        assert!(
            read.validate(v2),
            "the resolved record is a valid v2 record"
        );
    }

    #[test]
    fn a_v1_event_reads_as_a_plain_v2_bid() {
        let schema = parse(BID_PLACED_V1);
        let Schema::Record(record) = &schema else {
            panic!()
        };
        let value = Value::Record(
            record
                .fields
                .iter()
                .map(|f| {
                    let v = match &f.schema {
                        Schema::String => Value::String("x".into()),
                        Schema::Long => Value::Long(5),
                        Schema::Int => Value::Int(1),
                        Schema::TimestampMillis => Value::TimestampMillis(7),
                        other => panic!("{other:?}"),
                    };
                    (f.name.clone(), v)
                })
                .collect(),
        );
        let read = round_trip(&schema, value).unwrap();
        assert_eq!(field(&read, "automatic"), &Value::Boolean(false));
        assert_eq!(
            field(&read, "max_amount_minor"),
            &Value::Union(0, Box::new(Value::Null))
        );
    }

    #[test]
    fn fields_a_newer_writer_added_are_skipped_and_promotions_apply() {
        // A "v3" writer: an unknown field, and amount_minor written as int.
        let mut v3: serde_json::Value = serde_json::from_str(PLACE_BID_V1).unwrap();
        let fields = v3["fields"].as_array_mut().unwrap();
        fields.push(serde_json::json!({"name": "note", "type": "string", "default": ""}));
        for field in fields.iter_mut() {
            if field["name"] == "amount_minor" {
                field["type"] = serde_json::json!("int");
            }
        }
        let writer = parse(&v3.to_string());
        let Value::Record(mut record) = v1_bid() else {
            panic!()
        };
        record.push(("note".into(), Value::String("hello".into())));
        for (name, value) in record.iter_mut() {
            if name == "amount_minor" {
                *value = Value::Int(10_500);
            }
        }
        let read = round_trip(&writer, Value::Record(record)).unwrap();
        let Value::Record(fields) = &read else {
            panic!()
        };
        assert!(fields.iter().all(|(n, _)| n != "note"), "{fields:?}");
        assert_eq!(field(&read, "amount_minor"), &Value::Long(10_500));
    }

    /// A build of the previous release reads a v2 bid as a v1 bid: the
    /// maximum is dropped, the rest is as written (why the aggregate is
    /// rolled out before the producers of v2 commands).
    #[test]
    fn a_v1_reader_reads_a_v2_bid_without_its_maximum() {
        let v2 = reader_schema("dev.gavel.auction.commands.PlaceBid").unwrap();
        let v1 = parse(PLACE_BID_V1);
        let Value::Record(mut fields) = v1_bid() else {
            panic!()
        };
        fields.push((
            "max_amount_minor".into(),
            Value::Union(1, Box::new(Value::Long(30_000))),
        ));
        let read = Resolution::new(v2, &v1)
            .unwrap()
            .apply(written(v2, &Value::Record(fields)))
            .unwrap();
        assert!(read.validate(&v1), "{read:?}");
        assert_eq!(field(&read, "amount_minor"), &Value::Long(10_500));
    }

    #[test]
    fn a_field_renamed_with_an_alias_takes_the_readers_name() {
        let writer = parse(PLACE_BID_V1);
        let mut renamed: serde_json::Value = serde_json::from_str(PLACE_BID_V1).unwrap();
        for field in renamed["fields"].as_array_mut().unwrap() {
            if field["name"] == "bidder_id" {
                field["name"] = serde_json::json!("bidder");
                field["aliases"] = serde_json::json!(["bidder_id"]);
            }
        }
        let reader = parse(&renamed.to_string());
        let resolution = Resolution::new(&writer, &reader).unwrap();
        assert!(matches!(resolution, Resolution::Plan(_)), "{resolution:?}");
        let read = resolution.apply(written(&writer, &v1_bid())).unwrap();
        assert_eq!(field(&read, "bidder"), &Value::String("ann".into()));
        assert!(read.validate(&reader), "{read:?}");
    }

    #[test]
    fn a_logical_type_is_not_the_same_as_its_underlying_type() {
        let writer = parse(PLACE_BID_V1);
        let mut stamped: serde_json::Value = serde_json::from_str(PLACE_BID_V1).unwrap();
        for field in stamped["fields"].as_array_mut().unwrap() {
            if field["name"] == "amount_minor" {
                field["type"] =
                    serde_json::json!({"type": "long", "logicalType": "timestamp-millis"});
            }
        }
        let reader = parse(&stamped.to_string());
        assert!(!matches!(
            Resolution::new(&writer, &reader).unwrap(),
            Resolution::Same | Resolution::Append(_)
        ));
    }

    #[test]
    fn an_incompatible_writer_is_refused_with_the_reason() {
        let mut broken: serde_json::Value = serde_json::from_str(PLACE_BID_V1).unwrap();
        for field in broken["fields"].as_array_mut().unwrap() {
            if field["name"] == "bidder_id" {
                field["type"] = serde_json::json!("long");
            }
        }
        let writer = parse(&broken.to_string());
        let reader = reader_schema("dev.gavel.auction.commands.PlaceBid").unwrap();
        let error = Resolution::new(&writer, reader).unwrap_err().to_string();
        assert!(error.contains("cannot be read by this build"), "{error}");
    }

    /// `reader_schema(name)`'s text with a field added (with a default) to
    /// the Money record defined inside it: a newer writer's schema.
    fn with_money_note(name: &str) -> Schema {
        let (_, text) = own_schema(name).unwrap();
        let mut json: serde_json::Value = serde_json::from_str(text).unwrap();
        fn add_note(node: &mut serde_json::Value) {
            match node {
                serde_json::Value::Object(object) => {
                    if object.get("name").and_then(|n| n.as_str()) == Some("Money")
                        && object.get("type").and_then(|t| t.as_str()) == Some("record")
                    {
                        object["fields"]
                            .as_array_mut()
                            .unwrap()
                            .push(serde_json::json!(
                                {"name": "note", "type": "string", "default": ""}
                            ));
                    }
                    object.values_mut().for_each(add_note);
                }
                serde_json::Value::Array(items) => items.iter_mut().for_each(add_note),
                _ => {}
            }
        }
        add_note(&mut json);
        parse(&json.to_string())
    }

    /// Writes `record` (serde JSON) with `writer`, reads it with this build's
    /// schema of the same record, and returns it as serde JSON again.
    fn evolved_round_trip(writer: &Schema, record: serde_json::Value) -> serde_json::Value {
        let name = record_name(writer).unwrap();
        let value = super::super::json::Shape::new(writer)
            .unwrap()
            .to_avro(&record)
            .unwrap();
        let reader = reader_schema(&name).unwrap();
        let resolution = Resolution::new(writer, reader).unwrap();
        let read = resolution.apply(written(writer, &value)).unwrap();
        super::super::json::shape(&name)
            .unwrap()
            .from_avro(read)
            .unwrap()
    }

    #[test]
    fn a_newer_step_command_keeps_its_branch_and_every_amount() {
        let writer = with_money_note("dev.gavel.saga.StepCommand");
        let step = |money: serde_json::Value| {
            serde_json::json!({
                "saga_kind": "payment", "saga_id": "s", "step": "charge-winner",
                "direction": "undo", "attempt": 1, "command_id": "c", "effect_key": "e",
                "causation_id": "x", "reply_to": "r", "reply_partition": 0, "deadline_ms": 5,
                "command": {"RefundWinner": {"auction_id": "a", "winner_id": "w", "amount": money}}
            })
        };
        let written = step(serde_json::json!({"minor": 700, "currency": "EUR", "note": "n"}));
        let read = evolved_round_trip(&writer, written);
        // Not the first branch whose fields fit (ChargeWinner): the one of its name.
        assert_eq!(
            read,
            step(serde_json::json!({"minor": 700, "currency": "EUR"}))
        );
    }

    #[test]
    fn a_changed_type_defined_in_another_field_is_converted_where_it_is_referenced() {
        let writer = with_money_note("dev.gavel.views.AuctionDetails");
        let money = |minor: i64, note: bool| {
            let mut m = serde_json::json!({"minor": minor, "currency": "EUR"});
            if note {
                m["note"] = serde_json::json!("n");
            }
            m
        };
        let details = |note: bool| {
            serde_json::json!({
                "auction_id": "a", "tenant_id": "t", "seller_id": "s", "title": "T",
                "status": "Active", "starting_price": money(1, note),
                "reserve_price": money(2, note), "min_increment": money(3, note),
                "current_price": money(4, note), "bid_count": 1, "leading_bidder": "u",
                "winner_id": null, "end_time": 9, "created_at": 1, "updated_at": 2,
                "version": 3, "bidder_count": 1,
                "bidders": [{"user_id": "u", "highest_bid": money(4, note), "bid_count": 1, "last_bid_at": 2}],
                "last_bid_automatic": false
            })
        };
        assert_eq!(evolved_round_trip(&writer, details(true)), details(false));
    }
}
