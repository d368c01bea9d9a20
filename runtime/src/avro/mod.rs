//! Avro with the Confluent wire format (magic byte 0, 4-byte big-endian schema id,
//! Avro binary). schema_registry_converter talks to the registry; the hot path
//! encodes and decodes with writers/readers resolved once per schema id, so a
//! record costs one Avro pass and no registry call. A consumer's codec decodes
//! only with schemas its [`guard::SchemaGuard`] admits, and every decode is
//! bounded by [`MAX_AVRO_ALLOCATION`].

mod deep;
pub mod guard;
pub mod json;
pub mod reader;

use crate::registry_endpoint::RegistryEndpoint;
use crate::{Result, RuntimeError};
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;
use reader::Resolution;
use schema_registry_converter::async_impl::avro::AvroDecoder;
use schema_registry_converter::async_impl::schema_registry::SrSettings;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

const MAGIC_BYTE: u8 = 0;
const HEADER_LEN: usize = 5;

/// One registered schema, resolved for reading and writing.
pub struct CachedSchema {
    pub id: u32,
    /// Full record name, e.g. `dev.gavel.auction.commands.PlaceBid`.
    pub name: String,
    writer: GenericDatumWriter<'static>,
    reader: GenericDatumReader<'static>,
    /// How a record written with this schema becomes this build's record of
    /// the same name (or why it cannot), worked out once per schema id.
    resolution: std::result::Result<Resolution, String>,
}

impl CachedSchema {
    /// This build's schema of `name` under registry id `id` (for tests).
    #[cfg(test)]
    pub(crate) fn compiled_in(id: u32, name: &str) -> Result<Self> {
        let schema = reader::reader_schema(name)
            .ok_or_else(|| RuntimeError::Avro(format!("no schema of {name}")))?;
        Self::new(id, schema)
    }

    fn new(id: u32, parsed: &Schema) -> Result<Self> {
        // Schemas are few and live as long as the process: leaking one gives the
        // resolved reader/writer the 'static borrow they need, resolved once.
        let schema: &'static Schema = Box::leak(Box::new(parsed.clone()));
        let name = reader::record_name(schema).ok_or_else(|| {
            RuntimeError::Avro(format!("expected a record schema, got {schema:?}"))
        })?;
        let resolution = match reader::reader_schema(&name) {
            Some(reader) => Resolution::new(schema, reader).map_err(|e| e.to_string()),
            // A record this build has no schema of (tools reading foreign
            // subjects) is read as written.
            None => Ok(Resolution::Same),
        };
        Ok(Self {
            id,
            name,
            writer: GenericDatumWriter::builder(schema).build()?,
            reader: GenericDatumReader::builder(schema).build()?,
            resolution,
        })
    }

    /// Confluent wire format bytes for `value`, validated against this schema.
    pub fn encode(&self, value: &Value) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(128);
        out.push(MAGIC_BYTE);
        out.extend_from_slice(&self.id.to_be_bytes());
        self.writer.write_value_ref(&mut out, value)?;
        Ok(out)
    }

    /// Decodes with the writer schema, then resolves to this build's schema.
    fn decode_body(&self, mut body: &[u8]) -> Result<Value> {
        let written = self.reader.read_value(&mut body)?;
        match &self.resolution {
            Ok(resolution) => resolution.apply(written),
            Err(reason) => Err(RuntimeError::Avro(reason.clone())),
        }
    }
}

/// A decoded record and the schema it was written with.
pub struct Decoded {
    pub schema: Arc<CachedSchema>,
    pub value: Value,
}

pub struct AvroCodec {
    registry: crate::registry::RegistryClient,
    decoder: AvroDecoder,
    /// Writer schemas of the records this process produces.
    by_id: RwLock<HashMap<u32, Arc<CachedSchema>>>,
    /// Schemas admitted for decoding what this process consumes.
    readable: RwLock<HashMap<u32, Arc<CachedSchema>>>,
    guard: Option<guard::SchemaGuard>,
}

/// Bytes one Avro decode may allocate for a string, bytes or collection: our
/// records are far smaller, and a record over 1 MB never reaches a consumer
/// through a default broker. (apache-avro's own default is 512 MB.)
pub const MAX_AVRO_ALLOCATION: usize = 1024 * 1024;

/// Sets [`MAX_AVRO_ALLOCATION`] for the process; the first call wins.
pub fn cap_allocations() -> usize {
    apache_avro::util::max_allocation_bytes(MAX_AVRO_ALLOCATION)
}

impl AvroCodec {
    /// A codec that decodes with any schema the registry has (tools, tests).
    pub fn new(registry: &RegistryEndpoint) -> Self {
        cap_allocations();
        Self {
            registry: crate::registry::RegistryClient::new(registry),
            decoder: AvroDecoder::new(settings(registry)),
            by_id: RwLock::new(HashMap::new()),
            readable: RwLock::new(HashMap::new()),
            guard: None,
        }
    }

    /// A consumer's codec: decodes only records whose schema is registered
    /// under one of `topics`' subjects; any other id is `UnknownSchema`.
    pub fn for_topics(registry: &RegistryEndpoint, topics: &[&str]) -> Self {
        Self {
            guard: Some(guard::SchemaGuard::new(registry, topics)),
            ..Self::new(registry)
        }
    }

    /// Makes schema `id` readable if the guard admits it (fetching it from the
    /// registry once); `UnknownSchema` when refused, `RegistryUnavailable` when
    /// the registry must be asked and does not answer.
    pub async fn admit(&self, id: u32) -> Result<Arc<CachedSchema>> {
        if let Some(guard) = &self.guard {
            if guard.admit(id).await? == guard::Admission::Refused {
                return Err(RuntimeError::UnknownSchema(id));
            }
        }
        self.fetch_schema(id).await
    }

    /// Ids the guard refuses and remembers now (0 without a guard).
    pub fn refused_schema_ids(&self) -> usize {
        self.guard
            .as_ref()
            .map_or(0, guard::SchemaGuard::refused_count)
    }

    /// The schema this build writes `record_name` with on `topic` (its own
    /// copy from `schemas/`), under its registered id (TopicRecordNameStrategy
    /// subject `<topic>-<record_name>`). Never "the latest version": in a
    /// rolling upgrade an older producer keeps writing its own version after
    /// a newer one is registered. A lookup the registry did not answer (a
    /// stalled request, a 503) is tried again before it fails.
    pub async fn writer_for(&self, topic: &str, record_name: &str) -> Result<Arc<CachedSchema>> {
        let subject = format!("{topic}-{record_name}");
        let (schema, text) = reader::own_schema(record_name).ok_or_else(|| {
            RuntimeError::Registry(format!("this build has no schema of {record_name}"))
        })?;
        let mut attempt = 1;
        let id = loop {
            match self.registry.lookup(&subject, text).await {
                Ok(Some(id)) => break id,
                Ok(None) => {
                    return Err(RuntimeError::Registry(format!(
                        "subject {subject} does not hold this build's schema of {record_name} (run `gavel schemas register`)"
                    )))
                }
                Err(error) if error.is_transient() && attempt < WRITER_ATTEMPTS => {
                    tracing::warn!(%subject, %error, attempt, "schema lookup failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(250 * attempt)).await;
                    attempt += 1;
                }
                Err(error) => return Err(writer_lookup_failed(&subject, error)),
            }
        };
        self.remember(id, schema)
    }

    /// Decodes with an admitted schema, or says which schema id must be admitted first.
    pub fn decode_cached(&self, payload: &[u8]) -> Result<Decoded> {
        let (id, body) = split_wire_format(payload)?;
        let schema = self
            .readable
            .read()
            .ok()
            .and_then(|map| map.get(&id).cloned())
            .ok_or(RuntimeError::UnknownSchema(id))?;
        let value = schema.decode_body(body)?;
        Ok(Decoded { schema, value })
    }

    /// [`AvroCodec::decode`] from a thread outside the async runtime (the
    /// processors' blocking loops): an unseen schema is admitted on `runtime`.
    pub fn decode_on(&self, runtime: &tokio::runtime::Handle, payload: &[u8]) -> Result<Decoded> {
        match self.decode_cached(payload) {
            Err(RuntimeError::UnknownSchema(id)) => runtime
                .block_on(self.admit(id))
                .and_then(|_| self.decode_cached(payload)),
            other => other,
        }
    }

    /// Decodes, admitting an unseen writer schema once (see [`AvroCodec::admit`]).
    pub async fn decode(&self, payload: &[u8]) -> Result<Decoded> {
        match self.decode_cached(payload) {
            Err(RuntimeError::UnknownSchema(id)) => {
                self.admit(id).await?;
                self.decode_cached(payload)
            }
            other => other,
        }
    }

    /// Fetches schema `id` from the registry (once) and makes it readable,
    /// whether or not the guard would admit it: callers go through `admit`.
    async fn fetch_schema(&self, id: u32) -> Result<Arc<CachedSchema>> {
        let mut retried = false;
        let registered = loop {
            let started = std::time::Instant::now();
            let error = match self.decoder.get_schema(id).await {
                Ok(registered) => break registered,
                Err(error) => RuntimeError::from(error),
            };
            if error.is_transient() {
                // The converter caches non-retriable answers such as a
                // 500; an outage must not be remembered past its end.
                self.decoder.remove_errors_from_cache();
            }
            // A transport error at once is most often a pooled connection
            // the registry had just closed: asked again, it answers. A slow
            // failure (a stalled registry) is not asked twice here; the
            // caller holds its partition and retries.
            if !error.is_transient() || retried || started.elapsed() > STALE_CONNECTION {
                return Err(error);
            }
            retried = true;
        };
        let schema = self.remember(registered.id, &registered.parsed)?;
        if let Ok(mut map) = self.readable.write() {
            map.insert(schema.id, schema.clone());
        }
        Ok(schema)
    }

    fn cached(&self, id: u32) -> Option<Arc<CachedSchema>> {
        self.by_id.read().ok().and_then(|map| map.get(&id).cloned())
    }

    fn remember(&self, id: u32, parsed: &Schema) -> Result<Arc<CachedSchema>> {
        if let Some(known) = self.cached(id) {
            return Ok(known);
        }
        let schema = Arc::new(CachedSchema::new(id, parsed)?);
        if let Ok(mut map) = self.by_id.write() {
            map.insert(schema.id, schema.clone());
        }
        Ok(schema)
    }
}

/// Why a writer-schema lookup failed, naming the subject; an unreachable
/// registry stays transient, so the caller waits.
fn writer_lookup_failed(subject: &str, error: RuntimeError) -> RuntimeError {
    match error {
        RuntimeError::RegistryUnavailable(reason) => {
            RuntimeError::RegistryUnavailable(format!("subject {subject}: {reason}"))
        }
        other => RuntimeError::Registry(format!("subject {subject}: {other}")),
    }
}

/// A registry call that fails faster than this failed on the connection,
/// not in the registry: it is tried once more at once.
const STALE_CONNECTION: std::time::Duration = std::time::Duration::from_secs(1);

/// Tries of a writer-schema lookup (at start-up) before it fails.
const WRITER_ATTEMPTS: u64 = 3;

/// Registry settings (credential, CA) with a bounded request time, so a
/// stalled registry fails a lookup instead of hanging the worker. An answer
/// takes milliseconds; 10 s is a request lost on the way.
fn settings(registry: &RegistryEndpoint) -> SrSettings {
    registry.converter_settings(std::time::Duration::from_secs(10))
}

/// Splits a Confluent-framed payload into schema id and Avro body.
pub fn split_wire_format(payload: &[u8]) -> Result<(u32, &[u8])> {
    match payload {
        [MAGIC_BYTE, a, b, c, d, ..] => {
            Ok((u32::from_be_bytes([*a, *b, *c, *d]), &payload[HEADER_LEN..]))
        }
        [] => Err(RuntimeError::Avro("empty payload".into())),
        _ => Err(RuntimeError::Avro(format!(
            "not Confluent wire format (first byte {:#04x}, {} bytes)",
            payload[0],
            payload.len()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format_is_split_into_id_and_body() {
        assert_eq!(
            split_wire_format(&[0, 0, 0, 1, 2, 42]).unwrap(),
            (258, &[42u8][..])
        );
    }

    #[test]
    fn foreign_payloads_are_refused_with_a_reason() {
        let error = split_wire_format(b"{\"json\":1}").unwrap_err().to_string();
        assert!(error.contains("not Confluent wire format"), "{error}");
        assert!(split_wire_format(&[]).is_err());
        assert!(split_wire_format(&[0, 1]).is_err());
    }
}
