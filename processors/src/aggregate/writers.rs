//! The schemas the aggregate processor writes with, resolved once at start.

use gavel_runtime::auction_codec::{EVENT_RECORDS, OUTCOME_RECORD};
use gavel_runtime::avro::{AvroCodec, CachedSchema};
use gavel_runtime::{Config, Result, RuntimeError};
use std::collections::HashMap;
use std::sync::Arc;

pub struct Writers {
    events: HashMap<&'static str, Arc<CachedSchema>>,
    pub outcome: Arc<CachedSchema>,
}

impl Writers {
    pub async fn load(codec: &AvroCodec, config: &Config) -> Result<Self> {
        let mut events = HashMap::new();
        for record in EVENT_RECORDS {
            events.insert(
                record,
                codec.writer_for(&config.topics.events, record).await?,
            );
        }
        let outcome = codec
            .writer_for(&config.topics.outcomes, OUTCOME_RECORD)
            .await?;
        Ok(Self { events, outcome })
    }

    pub fn event(&self, record: &str) -> Result<&CachedSchema> {
        self.events
            .get(record)
            .map(Arc::as_ref)
            .ok_or_else(|| RuntimeError::Registry(format!("no writer schema for {record}")))
    }
}
