//! Tracing setup: `GAVEL_LOG_FORMAT=text` (default, human-readable) or `json`
//! (one JSON object per line with the current span and its parents, so the
//! correlation id, aggregate id and topic/partition/offset of a record's span
//! travel with every line logged inside it). `GAVEL_LOG` is the filter.
//!
//! `GAVEL_OTLP_ENDPOINT` (an OTLP/HTTP traces URL such as
//! `http://otel-collector:4318/v1/traces`) also exports every span the filter
//! lets through, in batches, as service `gavel-<role>`. Unset: nothing is
//! exported and no exporter thread runs.

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter};

/// Set once spans are exported, so records skip the trace-context parsing otherwise.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Keeps the span exporter alive; dropping it flushes the spans still queued.
#[must_use = "dropping the guard stops the span export"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(error) = provider.shutdown() {
                eprintln!("span export did not flush: {error}");
            }
        }
    }
}

/// Installs the global subscriber for `service` (e.g. `gavel-aggregate`).
pub fn init_tracing(service: &str) -> Telemetry {
    let filter = EnvFilter::try_from_env("GAVEL_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,rdkafka=warn,librdkafka=warn"));
    let format = std::env::var("GAVEL_LOG_FORMAT").unwrap_or_default();
    let endpoint = std::env::var("GAVEL_OTLP_ENDPOINT").unwrap_or_default();
    let (provider, export_error) = match endpoint.as_str() {
        "" => (None, None),
        endpoint => match otlp_provider(endpoint, service) {
            Ok(provider) => (Some(provider), None),
            Err(error) => (None, Some(error)),
        },
    };
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("gavel")));
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // A second init (tests share a process) is harmless.
    let _ = match format.as_str() {
        "json" => registry
            .with(
                fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        _ => registry
            .with(fmt::layer().with_ansi(ansi).with_writer(std::io::stderr))
            .try_init(),
    };
    if !matches!(format.as_str(), "" | "text" | "json") {
        tracing::warn!(%format, "GAVEL_LOG_FORMAT must be text or json; using text");
    }
    EXPORTING.store(provider.is_some(), Ordering::Relaxed);
    match (&provider, export_error) {
        (Some(_), _) => tracing::info!(%endpoint, %service, "exporting spans over OTLP/HTTP"),
        (None, Some(error)) => {
            tracing::warn!(%endpoint, %error, "OTLP span export not started; logging only")
        }
        (None, None) => {}
    }
    Telemetry { provider }
}

/// The exporter's blocking HTTP client must not be built on an async worker
/// thread (reqwest refuses), so it is built on a thread of its own.
fn otlp_provider(endpoint: &str, service: &str) -> Result<SdkTracerProvider, String> {
    let endpoint = endpoint.to_owned();
    let exporter = std::thread::spawn(move || {
        SpanExporter::builder()
            .with_http()
            .with_endpoint(endpoint)
            .build()
            .map_err(|e| e.to_string())
    })
    .join()
    .map_err(|_| "the exporter thread panicked".to_owned())??;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(service.to_owned())
                .build(),
        )
        .build())
}

/// Makes a record's span a child of the W3C `traceparent` its record carries,
/// so the exported spans of one user action (the trace id is its correlation
/// id) form one trace across the command API, the processors and the sinks.
pub fn follow_traceparent(span: &tracing::Span, traceparent: &str) {
    if traceparent.is_empty() || span.is_disabled() || !EXPORTING.load(Ordering::Relaxed) {
        return;
    }
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let parent = TraceContextPropagator::new().extract(&carrier);
    // Only fails when no OpenTelemetry layer is installed: then nothing is exported.
    let _ = span.set_parent(parent);
}
