//! The values of the access table's `{placeholders}` for one configuration.

use crate::kafka::{auction_topic_names, SAGA_KINDS};
use crate::Config;
use std::collections::HashMap;

/// Placeholder → the names it stands for (one for a setting, several for
/// `{participant}`, `{saga_kind}` and `{all_topics}`).
pub struct Names(HashMap<&'static str, Vec<String>>);

impl Names {
    pub fn of(config: &Config) -> Self {
        let t = &config.topics;
        let one = |value: &str| vec![value.to_owned()];
        let participants = gavel_domain::saga::Participant::ALL
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect();
        Self(HashMap::from([
            ("commands", one(&t.commands)),
            ("events", one(&t.events)),
            ("outcomes", one(&t.outcomes)),
            ("changelog", one(&t.changelog)),
            ("view_details", one(&t.view_details)),
            ("view_list", one(&t.view_list)),
            ("view_user_bids", one(&t.view_user_bids)),
            ("orders", one(&t.orders)),
            ("saga_prefix", one(&t.saga_prefix)),
            ("outbox_dlq", one(&config.outbox_dlq_topic)),
            ("aggregate_group", one(&config.aggregate_group)),
            ("project_group", one(&config.project_group)),
            ("sink_group", one(&config.sink_group)),
            ("saga_group", one(&config.saga_group)),
            ("reader_group", one(&config.reader_group)),
            ("schema", one(&config.postgres_schema)),
            ("outbox_schema", one(&config.outbox_schema)),
            ("participant", participants),
            (
                "saga_kind",
                SAGA_KINDS.iter().map(|k| (*k).to_owned()).collect(),
            ),
            ("all_topics", auction_topic_names(config)),
        ]))
    }

    /// Every name `pattern` stands for: one per combination of its
    /// placeholders' values. An unknown placeholder is an error.
    pub fn expand(&self, pattern: &str) -> Result<Vec<String>, String> {
        let Some(open) = pattern.find('{') else {
            return Ok(vec![pattern.to_owned()]);
        };
        let close = pattern[open..]
            .find('}')
            .map(|i| open + i)
            .ok_or_else(|| format!("unclosed {{ in {pattern:?}"))?;
        let key = &pattern[open + 1..close];
        let values = self
            .0
            .get(key)
            .ok_or_else(|| format!("unknown placeholder {{{key}}} in {pattern:?}"))?;
        let mut expanded = Vec::new();
        for value in values {
            let filled = format!("{}{value}{}", &pattern[..open], &pattern[close + 1..]);
            expanded.extend(self.expand(&filled)?);
        }
        Ok(expanded)
    }
}
