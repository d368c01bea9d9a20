//! A field whose writer and reader types differ, resolved by name all the way
//! down. apache-avro's `Value::resolve` takes the first union branch a value
//! fits (so a `RefundWinner` written by a newer schema would read as a
//! `ChargeWinner` of the same fields) and cannot follow a reference to a type
//! defined in another field; here a union branch is found by its type's name,
//! a record's fields by theirs, and references through each side's own
//! named types.

use crate::{Result, RuntimeError};
use apache_avro::schema::{Name, RecordField, ResolvedSchema, Schema, SchemaKind};
use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::types::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// Nesting deeper than this is refused (the schemas here are far shallower).
const MAX_DEPTH: usize = 64;

/// The named types one schema defines, by full name.
#[derive(Debug)]
pub struct Types(HashMap<Name, Schema>);

impl Types {
    pub fn of(root: &Schema) -> Result<Self> {
        let resolved = ResolvedSchema::new(root)?;
        let names = resolved.get_names();
        Ok(Self(
            names
                .iter()
                .map(|(name, schema)| (name.clone(), (*schema).clone()))
                .collect(),
        ))
    }

    fn resolve<'a>(&'a self, schema: &'a Schema) -> Result<&'a Schema> {
        match schema {
            Schema::Ref { name } => self
                .0
                .get(name)
                .ok_or_else(|| RuntimeError::Avro(format!("unknown type {}", name.fullname(None)))),
            other => Ok(other),
        }
    }
}

/// One field's writer type, reader type and the named types of both records.
#[derive(Debug)]
pub struct Conversion {
    pub writer: Schema,
    pub reader: Schema,
    pub writer_types: Arc<Types>,
    pub reader_types: Arc<Types>,
}

impl Conversion {
    pub fn apply(&self, value: Value) -> Result<Value> {
        let sides = Sides {
            writer: &self.writer_types,
            reader: &self.reader_types,
        };
        sides.convert(value, &self.writer, &self.reader, 0)
    }
}

#[derive(Clone, Copy)]
pub struct Sides<'a> {
    pub writer: &'a Types,
    pub reader: &'a Types,
}

impl Sides<'_> {
    /// True when a value written as `w` is already a value of `r`: the same
    /// types, named ones compared by their definitions, not their names.
    pub fn same(&self, w: &Schema, r: &Schema) -> bool {
        self.same_at(w, r, 0)
    }

    fn same_at(&self, w: &Schema, r: &Schema, depth: usize) -> bool {
        if depth > MAX_DEPTH {
            return false;
        }
        let (Ok(w), Ok(r)) = (self.writer.resolve(w), self.reader.resolve(r)) else {
            return false;
        };
        let next = depth + 1;
        match (w, r) {
            (Schema::Record(w), Schema::Record(r)) => {
                w.name == r.name
                    && w.fields.len() == r.fields.len()
                    && w.fields.iter().zip(&r.fields).all(|(wf, rf)| {
                        wf.name == rf.name && self.same_at(&wf.schema, &rf.schema, next)
                    })
            }
            (Schema::Union(w), Schema::Union(r)) => {
                w.variants().len() == r.variants().len()
                    && w.variants()
                        .iter()
                        .zip(r.variants())
                        .all(|(wb, rb)| self.same_at(wb, rb, next))
            }
            (Schema::Array(w), Schema::Array(r)) => self.same_at(&w.items, &r.items, next),
            (Schema::Map(w), Schema::Map(r)) => self.same_at(&w.types, &r.types, next),
            (w, r) => w == r,
        }
    }

    fn convert(&self, value: Value, w: &Schema, r: &Schema, depth: usize) -> Result<Value> {
        if depth > MAX_DEPTH {
            return Err(RuntimeError::Avro("value nested too deep".into()));
        }
        let (w, r) = (self.writer.resolve(w)?, self.reader.resolve(r)?);
        let next = depth + 1;
        match (value, w, r) {
            (Value::Union(i, inner), Schema::Union(union), _) => {
                let branch = usize::try_from(i)
                    .ok()
                    .and_then(|i| union.variants().get(i))
                    .ok_or_else(|| RuntimeError::Avro(format!("no union branch {i}")))?;
                self.convert(*inner, branch, r, next)
            }
            (value, w, Schema::Union(union)) => {
                let (j, branch) = self.branch_for(w, union.variants())?;
                let converted = self.convert(value, w, branch, next)?;
                Ok(Value::Union(j, Box::new(converted)))
            }
            (Value::Record(written), Schema::Record(wr), Schema::Record(rr)) => {
                self.record(written, &wr.fields, &rr.fields, next)
            }
            (Value::Array(items), Schema::Array(wa), Schema::Array(ra)) => items
                .into_iter()
                .map(|item| self.convert(item, &wa.items, &ra.items, next))
                .collect::<Result<_>>()
                .map(Value::Array),
            (Value::Map(entries), Schema::Map(wm), Schema::Map(rm)) => entries
                .into_iter()
                .map(|(key, item)| Ok((key, self.convert(item, &wm.types, &rm.types, next)?)))
                .collect::<Result<_>>()
                .map(Value::Map),
            (Value::Enum(_, symbol), _, Schema::Enum(enumeration)) => {
                let symbol = if enumeration.symbols.contains(&symbol) {
                    symbol
                } else {
                    enumeration.default.clone().ok_or_else(|| {
                        RuntimeError::Avro(format!("symbol {symbol} unknown to this build"))
                    })?
                };
                let index = enumeration
                    .symbols
                    .iter()
                    .position(|s| *s == symbol)
                    .and_then(|i| u32::try_from(i).ok())
                    .ok_or_else(|| RuntimeError::Avro(format!("symbol {symbol} unknown")))?;
                Ok(Value::Enum(index, symbol))
            }
            // Primitives: the same type, or a promotion (int to long, ...).
            (value, _, r) => Ok(value.resolve(r)?),
        }
    }

    /// The reader's fields from the writer's, each found by name (or by a
    /// reader alias), absent ones from their defaults.
    fn record(
        &self,
        mut written: Vec<(String, Value)>,
        writer_fields: &[RecordField],
        reader_fields: &[RecordField],
        depth: usize,
    ) -> Result<Value> {
        let mut fields = Vec::with_capacity(reader_fields.len());
        for field in reader_fields {
            let found = writer_fields
                .iter()
                .position(|w| w.name == field.name)
                .or_else(|| {
                    writer_fields
                        .iter()
                        .position(|w| field.aliases.contains(&w.name))
                });
            let value = match found {
                Some(i) => {
                    let slot = written.get_mut(i).ok_or_else(|| {
                        RuntimeError::Avro(format!("the record lacks field {}", field.name))
                    })?;
                    let value = std::mem::replace(&mut slot.1, Value::Null);
                    self.convert(value, &writer_fields[i].schema, &field.schema, depth)?
                }
                None => super::reader::default_of(field)?,
            };
            fields.push((field.name.clone(), value));
        }
        Ok(Value::Record(fields))
    }

    /// The reader's union branch for a value written as `w`: a named type by
    /// its name (or an alias), else the same type, else one it promotes to.
    fn branch_for<'v>(&self, w: &Schema, variants: &'v [Schema]) -> Result<(u32, &'v Schema)> {
        let resolved: Vec<&Schema> = variants
            .iter()
            .map(|v| self.reader.resolve(v))
            .collect::<Result<_>>()?;
        let found = match named(w) {
            Some((name, _)) => resolved.iter().position(|branch| {
                named(branch).is_some_and(|(n, aliases)| {
                    n == name || aliases.iter().any(|a| a.fullname(None) == name)
                })
            }),
            None => resolved
                .iter()
                .position(|branch| SchemaKind::from(*branch) == SchemaKind::from(w))
                .or_else(|| {
                    resolved
                        .iter()
                        .position(|branch| SchemaCompatibility::can_read(w, branch).is_ok())
                }),
        };
        let index = found.ok_or_else(|| {
            RuntimeError::Avro(format!("no union branch of this build reads {w:?}"))
        })?;
        let at = u32::try_from(index).map_err(|_| RuntimeError::Avro("union too wide".into()))?;
        Ok((at, &variants[index]))
    }
}

/// A named type's full name and aliases.
fn named(schema: &Schema) -> Option<(String, Vec<apache_avro::schema::Alias>)> {
    match schema {
        Schema::Record(r) => Some((r.name.fullname(None), r.aliases.clone().unwrap_or_default())),
        Schema::Enum(e) => Some((e.name.fullname(None), e.aliases.clone().unwrap_or_default())),
        Schema::Fixed(f) => Some((f.name.fullname(None), f.aliases.clone().unwrap_or_default())),
        _ => None,
    }
}
