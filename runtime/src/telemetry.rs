//! Tracing setup: `GAVEL_LOG_FORMAT=text` (default, human-readable) or `json`
//! (one JSON object per line with the current span and its parents, so the
//! correlation id, aggregate id and topic/partition/offset of a record's span
//! travel with every line logged inside it). `GAVEL_LOG` is the filter.
//! OTLP export is not built in: spans reach a collector through the JSON lines.

use tracing_subscriber::EnvFilter;

pub fn init_tracing() {
    let filter = EnvFilter::try_from_env("GAVEL_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,rdkafka=warn,librdkafka=warn"));
    let format = std::env::var("GAVEL_LOG_FORMAT").unwrap_or_default();
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let result = match format.as_str() {
        "json" => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
        _ => builder.try_init(),
    };
    // A second init (tests share a process) is harmless.
    let _ = result;
    if !matches!(format.as_str(), "" | "text" | "json") {
        tracing::warn!(%format, "GAVEL_LOG_FORMAT must be text or json; using text");
    }
}
