//! The saga contract's records as a test writes and reads them: Avro under
//! the test's own subjects, as an orchestrator or a participant would.

use gavel_runtime::avro::{json, AvroCodec};
use gavel_runtime::Config;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// `record` (full name `name`) in wire format for `topic`.
pub async fn encode<T: Serialize>(config: &Config, topic: &str, name: &str, record: &T) -> Vec<u8> {
    let codec = AvroCodec::new(&config.registry);
    let writer = codec.writer_for(topic, name).await.expect("writer schema");
    json::encode(&writer, record).expect("encodes")
}

/// Each payload read as a `name` record.
pub async fn decode_all<T: DeserializeOwned>(
    config: &Config,
    payloads: &[&[u8]],
    name: &str,
) -> Vec<T> {
    let codec = AvroCodec::new(&config.registry);
    let mut records = Vec::with_capacity(payloads.len());
    for payload in payloads {
        let decoded = codec.decode(payload).await.expect("decodes");
        records.push(json::decode(decoded, name).expect("the expected record"));
    }
    records
}
