//! Configuration: built-in local defaults, overridden by a `KEY=VALUE` file named
//! by `GAVEL_CONFIG`, overridden by the environment. One struct, read once.

use crate::http_settings::HttpSettings;
use crate::registry_endpoint::RegistryEndpoint;
use crate::security::{KafkaSecurity, PostgresTls};
use crate::{Result, RuntimeError};
use std::collections::HashMap;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    pub commands: String,
    pub events: String,
    pub outcomes: String,
    pub changelog: String,
    /// Compacted view topics the projector writes and the view sink reads.
    pub view_details: String,
    pub view_list: String,
    pub view_user_bids: String,
    /// Order events: `order.created` starts an order saga.
    pub orders: String,
    /// Prefix of every saga and participant topic (`saga.payment.replies`, ...).
    pub saga_prefix: String,
}

impl Topics {
    /// A topic of one saga kind: `{prefix}.{kind}.{part}` (changelog, replies, milestones).
    pub fn saga(&self, kind: &str, part: &str) -> String {
        format!("{}.{kind}.{part}", self.saga_prefix)
    }

    /// Where a participant takes its step commands from, whichever saga sends them.
    pub fn participant_commands(&self, participant: &str) -> String {
        format!("{}.participant.{participant}.commands", self.saga_prefix)
    }

    /// The view topics, in the order the view sink subscribes to them.
    pub fn views(&self) -> [&str; 3] {
        [&self.view_details, &self.view_list, &self.view_user_bids]
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub kafka_bootstrap: String,
    /// TLS and SASL of every Kafka client.
    pub kafka_security: KafkaSecurity,
    /// The schema registry: URL, the credential this process holds, its CA.
    pub registry: RegistryEndpoint,
    pub postgres_url: String,
    /// Whether (and against which CA) Postgres connections use TLS.
    pub postgres_tls: PostgresTls,
    /// Postgres schema holding the read models (tests use one per test).
    pub postgres_schema: String,
    pub topics: Topics,
    pub partitions: i32,
    pub replication_factor: i32,
    pub aggregate_group: String,
    pub project_group: String,
    pub sink_group: String,
    /// Prefix of the saga orchestrators' and participants' consumer groups.
    pub saga_group: String,
    /// Prefix of the groups of readers that never commit (their ACLs are
    /// prefixed on it): command API outcomes, query API live feed, lag probes.
    pub reader_group: String,
    /// Stable per worker replica (the pod name on Kubernetes): the transactional id
    /// derives from it so a restarted replica fences its predecessor at once.
    pub instance_id: String,
    /// Group protocol and membership of the workers' consumers.
    pub membership: crate::membership::Membership,
    pub batch_max: usize,
    /// What each consumer may pre-fetch, in KiB (librdkafka's queue bound).
    pub prefetch_kbytes: usize,
    pub batch_linger: Duration,
    /// Where a worker serves /metrics, /health and /ready (port 0: ephemeral).
    pub metrics_addr: String,
    /// Worker probe addresses (host:port) `gavel status` asks for readiness.
    pub status_workers: Vec<String>,
    /// Extra `group=topic` pairs the lag exporter and `gavel status` watch.
    pub lag_watch: Vec<(String, String)>,
    /// HS256 key both HTTP APIs check bearer tokens with (empty: HS256 off).
    pub jwt_secret: Secret,
    /// How long the command API waits for an outcome before answering 202.
    pub command_timeout: Duration,
    /// Postgres schema of the outbox table `gavel outbox-relay` drains.
    pub outbox_schema: String,
    /// Outbox rows claimed, published and marked per relay transaction at most.
    pub outbox_batch: i64,
    /// How long an idle relay waits before it looks for new rows again.
    pub outbox_poll: Duration,
    /// Where the relay dead-letters rows it cannot publish.
    pub outbox_dlq_topic: String,
    /// How long after its end time an ended or cancelled auction stays in the
    /// aggregate's memory and changelog (late commands get exact answers).
    pub closed_retention: Duration,
    /// The only topics the relay publishes to; empty: the pipeline's command
    /// and order topics (see [`Config::outbox_allowed_topics`]).
    pub outbox_allowed: Vec<String>,
    /// Token verification and limits of the HTTP APIs.
    pub http: HttpSettings,
}

/// A credential: compared and cloned like a string, never printed by `{:?}`
/// (a `Config` may end up in a log line).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The built-in JWT key: accepted (with a warning) only by an API listening on
/// loopback; anywhere else the API refuses to start with it.
pub const LOCAL_JWT_SECRET: &str = "local-development-only";

/// Every setting: (environment key, default, description). The README's config
/// reference is generated from this table (`gavel config`).
pub const SETTINGS: &[(&str, &str, &str)] = &[
    (
        "GAVEL_KAFKA_BOOTSTRAP",
        "127.0.0.1:9092",
        "Kafka bootstrap servers",
    ),
    (
        "GAVEL_KAFKA_SECURITY_PROTOCOL",
        "PLAINTEXT",
        "Kafka security.protocol: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
    ),
    (
        "GAVEL_KAFKA_SASL_MECHANISM",
        "SCRAM-SHA-512",
        "SASL mechanism with SASL_*: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
    ),
    (
        "GAVEL_KAFKA_SASL_USERNAME",
        "",
        "SASL user name (required with SASL_*)",
    ),
    (
        "GAVEL_KAFKA_SASL_PASSWORD",
        "",
        "SASL password (required with SASL_*; from a Secret)",
    ),
    (
        "GAVEL_KAFKA_SSL_CA_LOCATION",
        "",
        "PEM file of the CA signing the brokers' certificates (empty: system trust store)",
    ),
    (
        "GAVEL_REGISTRY_URL",
        "http://127.0.0.1:8081/apis/ccompat/v7",
        "Confluent-compatible schema registry URL",
    ),
    (
        "GAVEL_REGISTRY_USERNAME",
        "",
        "Schema registry basic-auth user: a reader for workers, the registrar for `gavel schemas register`",
    ),
    (
        "GAVEL_REGISTRY_PASSWORD",
        "",
        "Schema registry basic-auth password (from a Secret)",
    ),
    (
        "GAVEL_REGISTRY_CA_LOCATION",
        "",
        "PEM file of the CA signing the registry's certificate (https URLs; empty: system trust store)",
    ),
    (
        "GAVEL_READER_GROUP",
        "gavel-reader",
        "Prefix of the consumer groups of readers that never commit (command API outcomes, query API live feed, lag probes)",
    ),
    (
        "GAVEL_POSTGRES_URL",
        "postgres://gavel:gavel@127.0.0.1:5432/gavel",
        "Postgres connection URL (sslmode=require: TLS, certificate and host name verified)",
    ),
    (
        "GAVEL_POSTGRES_SSL_ROOT_CERT",
        "",
        "PEM file of the CA signing Postgres' certificate (empty: system trust store)",
    ),
    (
        "GAVEL_POSTGRES_SCHEMA",
        "gavel",
        "Postgres schema for read models and sink offsets",
    ),
    ("GAVEL_TOPIC_COMMANDS", "auction.commands", "Command topic"),
    ("GAVEL_TOPIC_EVENTS", "auction.events", "Event topic"),
    (
        "GAVEL_TOPIC_OUTCOMES",
        "auction.outcomes",
        "Command outcome topic",
    ),
    (
        "GAVEL_TOPIC_CHANGELOG",
        "auction.state-changelog",
        "Compacted aggregate state changelog",
    ),
    (
        "GAVEL_TOPIC_VIEW_DETAILS",
        "view.auction_details",
        "Compacted AuctionDetails view topic",
    ),
    (
        "GAVEL_TOPIC_VIEW_LIST",
        "view.auction_list",
        "Compacted AuctionList view topic (tombstones delist)",
    ),
    (
        "GAVEL_TOPIC_VIEW_USER_BIDS",
        "view.user_bids",
        "Compacted UserBids view topic",
    ),
    (
        "GAVEL_TOPIC_ORDERS",
        "order.events",
        "Order events (order.created starts an order saga)",
    ),
    (
        "GAVEL_TOPIC_SAGA_PREFIX",
        "saga",
        "Prefix of saga changelog/reply/milestone and participant command topics",
    ),
    ("GAVEL_PARTITIONS", "6", "Partitions for created topics"),
    (
        "GAVEL_REPLICATION_FACTOR",
        "1",
        "Replication factor for created topics",
    ),
    (
        "GAVEL_AGGREGATE_GROUP",
        "gavel-aggregate",
        "Consumer group of the aggregate processor",
    ),
    (
        "GAVEL_PROJECT_GROUP",
        "gavel-project",
        "Consumer group of the projector",
    ),
    (
        "GAVEL_SINK_GROUP",
        "gavel-sink-views",
        "Consumer group of the view sink",
    ),
    (
        "GAVEL_SAGA_GROUP",
        "gavel-saga",
        "Consumer group prefix of saga orchestrators and participants",
    ),
    (
        "GAVEL_INSTANCE_ID",
        "local-0",
        "Stable replica id (transactional id suffix, group.instance.id)",
    ),
    (
        "GAVEL_GROUP_MEMBERSHIP",
        "static",
        "Workers' group membership: static (classic protocol, group.instance.id = GAVEL_INSTANCE_ID), dynamic, consumer (KIP-848) or consumer-static",
    ),
    (
        "GAVEL_BATCH_MAX",
        "2000",
        "Records per transaction / sink batch at most",
    ),
    (
        "GAVEL_PREFETCH_KBYTES",
        "16384",
        "KiB each Kafka consumer pre-fetches at most: memory against throughput when far behind",
    ),
    (
        "GAVEL_BATCH_LINGER_MS",
        "5",
        "How long a batch waits for more records; records already fetched join it without waiting",
    ),
    (
        "GAVEL_METRICS_ADDR",
        "127.0.0.1:0",
        "Worker /metrics, /health, /ready (port 0: ephemeral, logged; deploy 0.0.0.0:9464)",
    ),
    (
        "GAVEL_STATUS_WORKERS",
        "",
        "Comma-separated host:port of worker probes for `gavel status`",
    ),
    (
        "GAVEL_LAG_WATCH",
        "",
        "Extra comma-separated group=topic pairs for the lag exporter and status",
    ),
    (
        "GAVEL_JWT_SECRET",
        LOCAL_JWT_SECRET,
        "HS256 key of both HTTP APIs' bearer tokens: >= 32 bytes, or empty to accept only JWKS keys (the local default and short keys are refused unless the API listens on loopback only)",
    ),
    (
        "GAVEL_COMMAND_TIMEOUT_MS",
        "2000",
        "How long the command API waits for an outcome before answering 202",
    ),
    // HTTP access control and limits of the query and command APIs (gavel-http).
    (
        "GAVEL_JWT_JWKS_URL",
        "",
        "JWKS URL of an identity provider: RS256/ES256 tokens, key chosen by `kid` (empty: none)",
    ),
    (
        "GAVEL_JWT_JWKS_FILE",
        "",
        "JWKS file, re-read like the URL (empty: none)",
    ),
    (
        "GAVEL_JWT_JWKS_REFRESH_SECS",
        "300",
        "How often the JWKS is fetched again (an unknown `kid` refetches at most every 5 s)",
    ),
    (
        "GAVEL_JWT_ISSUER",
        "",
        "Required `iss` of tokens (empty: not checked)",
    ),
    (
        "GAVEL_JWT_AUDIENCE",
        "",
        "Required `aud` of tokens (empty: not checked)",
    ),
    (
        "GAVEL_JWT_MAX_LIFETIME_SECS",
        "86400",
        "Longest token lifetime accepted: bounds exp - iat and exp - now",
    ),
    (
        "GAVEL_JWT_TENANT_CLAIM",
        "tenant",
        "Claim naming the tenant (a dotted path, e.g. `https://gavel/tenant` or `org.id`)",
    ),
    (
        "GAVEL_JWT_ROLES_CLAIM",
        "roles",
        "Claim holding the roles, an array of strings (dotted path, e.g. `realm_access.roles`)",
    ),
    (
        "GAVEL_HTTP_HEADER_TIMEOUT_MS",
        "5000",
        "How long a client may take to send a request's headers (also closes idle keep-alive connections)",
    ),
    (
        "GAVEL_HTTP_REQUEST_TIMEOUT_MS",
        "20000",
        "Bound on one request until its response starts (live streams run on, until shutdown)",
    ),
    (
        "GAVEL_HTTP_MAX_CONNECTIONS",
        "2048",
        "Open connections per API process; further clients wait in the listen backlog",
    ),
    (
        "GAVEL_HTTP_MAX_STREAMS_PER_CLIENT",
        "64",
        "Open live streams per client address (behind a proxy: the proxy's address)",
    ),
    (
        "GAVEL_QUERY_MAX_STREAMS_PER_USER",
        "8",
        "Open live streams per token user",
    ),
    (
        "GAVEL_QUERY_CURSOR_KEY",
        "",
        "HMAC key of the query API's page cursors, the same on every replica (empty: derived from GAVEL_JWT_SECRET)",
    ),
    (
        "GAVEL_IDEMPOTENCY_TTL_SECS",
        "86400",
        "How long the command API keeps an Idempotency-Key bound to its request",
    ),
    (
        "GAVEL_OUTBOX_SCHEMA",
        "outbox",
        "Postgres schema of the outbox table drained by `gavel outbox-relay`",
    ),
    (
        "GAVEL_OUTBOX_BATCH",
        "500",
        "Outbox rows claimed, published and marked sent per relay transaction",
    ),
    (
        "GAVEL_OUTBOX_POLL_MS",
        "100",
        "How long an idle outbox relay waits before polling again",
    ),
    (
        "GAVEL_OUTBOX_DLQ_TOPIC",
        "outbox.dlq",
        "Dead-letter topic of outbox rows that cannot be published",
    ),
    (
        "GAVEL_CLOSED_RETENTION_SECS",
        "86400",
        "How long after its end time the aggregate keeps an ended or cancelled auction (then: AUCTION_NOT_FOUND)",
    ),
    (
        "GAVEL_OUTBOX_ALLOWED_TOPICS",
        "",
        "Comma-separated topics the outbox relay may publish to; other rows are dead-lettered (empty: the command and order topics)",
    ),
];

impl Config {
    /// Defaults < `GAVEL_CONFIG` file < environment.
    pub fn load() -> Result<Self> {
        let mut values = default_values();
        if let Ok(path) = std::env::var("GAVEL_CONFIG") {
            merge_path(&mut values, &path)?;
        }
        for (key, _, _) in SETTINGS {
            if let Ok(value) = std::env::var(key) {
                values.insert((*key).to_owned(), value);
            }
        }
        Self::from_map(&values)
    }

    fn from_map(values: &HashMap<String, String>) -> Result<Self> {
        let get = |key: &str| values.get(key).cloned().unwrap_or_default();
        Ok(Self {
            kafka_bootstrap: get("GAVEL_KAFKA_BOOTSTRAP"),
            kafka_security: KafkaSecurity::new(
                &get("GAVEL_KAFKA_SECURITY_PROTOCOL"),
                &get("GAVEL_KAFKA_SASL_MECHANISM"),
                &get("GAVEL_KAFKA_SASL_USERNAME"),
                Secret::new(get("GAVEL_KAFKA_SASL_PASSWORD")),
                &get("GAVEL_KAFKA_SSL_CA_LOCATION"),
            )?,
            registry: RegistryEndpoint::new(
                &get("GAVEL_REGISTRY_URL"),
                &get("GAVEL_REGISTRY_USERNAME"),
                Secret::new(get("GAVEL_REGISTRY_PASSWORD")),
                &get("GAVEL_REGISTRY_CA_LOCATION"),
            )?,
            postgres_url: get("GAVEL_POSTGRES_URL"),
            postgres_tls: PostgresTls::new(
                &get("GAVEL_POSTGRES_URL"),
                &get("GAVEL_POSTGRES_SSL_ROOT_CERT"),
            )?,
            postgres_schema: identifier("GAVEL_POSTGRES_SCHEMA", &get("GAVEL_POSTGRES_SCHEMA"))?,
            topics: Topics {
                commands: get("GAVEL_TOPIC_COMMANDS"),
                events: get("GAVEL_TOPIC_EVENTS"),
                outcomes: get("GAVEL_TOPIC_OUTCOMES"),
                changelog: get("GAVEL_TOPIC_CHANGELOG"),
                view_details: get("GAVEL_TOPIC_VIEW_DETAILS"),
                view_list: get("GAVEL_TOPIC_VIEW_LIST"),
                view_user_bids: get("GAVEL_TOPIC_VIEW_USER_BIDS"),
                orders: get("GAVEL_TOPIC_ORDERS"),
                saga_prefix: get("GAVEL_TOPIC_SAGA_PREFIX"),
            },
            partitions: number(values, "GAVEL_PARTITIONS")?,
            replication_factor: number(values, "GAVEL_REPLICATION_FACTOR")?,
            aggregate_group: get("GAVEL_AGGREGATE_GROUP"),
            project_group: get("GAVEL_PROJECT_GROUP"),
            sink_group: get("GAVEL_SINK_GROUP"),
            saga_group: get("GAVEL_SAGA_GROUP"),
            reader_group: get("GAVEL_READER_GROUP"),
            instance_id: get("GAVEL_INSTANCE_ID"),
            membership: crate::membership::Membership::parse(&get("GAVEL_GROUP_MEMBERSHIP"))?,
            batch_max: number(values, "GAVEL_BATCH_MAX")?,
            prefetch_kbytes: prefetch_kbytes(values)?,
            batch_linger: Duration::from_millis(number(values, "GAVEL_BATCH_LINGER_MS")?),
            metrics_addr: get("GAVEL_METRICS_ADDR"),
            status_workers: list(&get("GAVEL_STATUS_WORKERS")),
            lag_watch: pairs(&get("GAVEL_LAG_WATCH"))?,
            jwt_secret: Secret::new(get("GAVEL_JWT_SECRET")),
            command_timeout: Duration::from_millis(number(values, "GAVEL_COMMAND_TIMEOUT_MS")?),
            outbox_schema: identifier("GAVEL_OUTBOX_SCHEMA", &get("GAVEL_OUTBOX_SCHEMA"))?,
            outbox_batch: positive(values, "GAVEL_OUTBOX_BATCH")?,
            outbox_poll: Duration::from_millis(number(values, "GAVEL_OUTBOX_POLL_MS")?),
            outbox_dlq_topic: get("GAVEL_OUTBOX_DLQ_TOPIC"),
            closed_retention: Duration::from_secs(number(values, "GAVEL_CLOSED_RETENTION_SECS")?),
            outbox_allowed: list(&get("GAVEL_OUTBOX_ALLOWED_TOPICS")),
            http: HttpSettings::from_values(values)?,
        })
    }

    /// Defaults < the `KEY=VALUE` file at `path`, the environment left out:
    /// a role's credentials file, read by `gavel access apply`.
    pub fn from_file(path: &str) -> Result<Self> {
        let mut values = default_values();
        merge_path(&mut values, path)?;
        Self::from_map(&values)
    }

    /// A copy whose topics, consumer groups, instance id and Postgres schema
    /// all start with `id`: a pipeline of its own beside any other on the same
    /// stack (tests and benchmarks).
    pub fn isolated(&self, id: &str) -> Self {
        let t = &self.topics;
        let mut config = self.clone();
        config.topics = Topics {
            commands: format!("{id}.{}", t.commands),
            events: format!("{id}.{}", t.events),
            outcomes: format!("{id}.{}", t.outcomes),
            changelog: format!("{id}.{}", t.changelog),
            view_details: format!("{id}.{}", t.view_details),
            view_list: format!("{id}.{}", t.view_list),
            view_user_bids: format!("{id}.{}", t.view_user_bids),
            orders: format!("{id}.{}", t.orders),
            saga_prefix: format!("{id}.{}", t.saga_prefix),
        };
        config.aggregate_group = format!("{id}-aggregate");
        config.project_group = format!("{id}-project");
        config.sink_group = format!("{id}-sink");
        config.saga_group = format!("{id}-saga");
        config.reader_group = format!("{id}-reader");
        config.instance_id = id.to_owned();
        config.postgres_schema = id.to_owned();
        config.outbox_schema = format!("{id}_{}", self.outbox_schema);
        config.outbox_dlq_topic = format!("{id}.{}", self.outbox_dlq_topic);
        config
    }

    /// A copy with some settings replaced (`KEY`, value), checked as `load`
    /// checks them; an unknown key is an error.
    pub fn with_overrides<K: AsRef<str>, V: Into<String>>(
        &self,
        overrides: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self> {
        let mut values: HashMap<String, String> = self
            .to_env()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        for (key, value) in overrides {
            let key = key.as_ref();
            if !values.contains_key(key) {
                return Err(RuntimeError::Config(format!("unknown setting {key}")));
            }
            values.insert(key.to_owned(), value.into());
        }
        Self::from_map(&values)
    }

    /// Every setting as the environment a child `gavel` process needs to load
    /// exactly this configuration (benchmarks spawn workers on a private pipeline).
    pub fn to_env(&self) -> Vec<(&'static str, String)> {
        let t = &self.topics;
        let joined_pairs: Vec<String> = self
            .lag_watch
            .iter()
            .map(|(g, t)| format!("{g}={t}"))
            .collect();
        let mut env = vec![
            ("GAVEL_KAFKA_BOOTSTRAP", self.kafka_bootstrap.clone()),
            (
                "GAVEL_KAFKA_SECURITY_PROTOCOL",
                self.kafka_security.protocol.as_str().to_owned(),
            ),
            (
                "GAVEL_KAFKA_SASL_MECHANISM",
                self.kafka_security.sasl_mechanism.clone(),
            ),
            (
                "GAVEL_KAFKA_SASL_USERNAME",
                self.kafka_security.sasl_username.clone(),
            ),
            (
                "GAVEL_KAFKA_SASL_PASSWORD",
                self.kafka_security.sasl_password.expose().to_owned(),
            ),
            (
                "GAVEL_KAFKA_SSL_CA_LOCATION",
                self.kafka_security.ssl_ca_location.clone(),
            ),
            ("GAVEL_REGISTRY_URL", self.registry.url.clone()),
            ("GAVEL_REGISTRY_USERNAME", self.registry.username.clone()),
            (
                "GAVEL_REGISTRY_PASSWORD",
                self.registry.password.expose().to_owned(),
            ),
            (
                "GAVEL_REGISTRY_CA_LOCATION",
                self.registry.ca_location.clone(),
            ),
            ("GAVEL_READER_GROUP", self.reader_group.clone()),
            ("GAVEL_POSTGRES_URL", self.postgres_url.clone()),
            (
                "GAVEL_POSTGRES_SSL_ROOT_CERT",
                self.postgres_tls.root_cert.clone(),
            ),
            ("GAVEL_POSTGRES_SCHEMA", self.postgres_schema.clone()),
            ("GAVEL_TOPIC_COMMANDS", t.commands.clone()),
            ("GAVEL_TOPIC_EVENTS", t.events.clone()),
            ("GAVEL_TOPIC_OUTCOMES", t.outcomes.clone()),
            ("GAVEL_TOPIC_CHANGELOG", t.changelog.clone()),
            ("GAVEL_TOPIC_VIEW_DETAILS", t.view_details.clone()),
            ("GAVEL_TOPIC_VIEW_LIST", t.view_list.clone()),
            ("GAVEL_TOPIC_VIEW_USER_BIDS", t.view_user_bids.clone()),
            ("GAVEL_TOPIC_ORDERS", t.orders.clone()),
            ("GAVEL_TOPIC_SAGA_PREFIX", t.saga_prefix.clone()),
            ("GAVEL_PARTITIONS", self.partitions.to_string()),
            (
                "GAVEL_REPLICATION_FACTOR",
                self.replication_factor.to_string(),
            ),
            ("GAVEL_AGGREGATE_GROUP", self.aggregate_group.clone()),
            ("GAVEL_PROJECT_GROUP", self.project_group.clone()),
            ("GAVEL_SINK_GROUP", self.sink_group.clone()),
            ("GAVEL_SAGA_GROUP", self.saga_group.clone()),
            ("GAVEL_INSTANCE_ID", self.instance_id.clone()),
            (
                "GAVEL_GROUP_MEMBERSHIP",
                self.membership.as_str().to_owned(),
            ),
            ("GAVEL_BATCH_MAX", self.batch_max.to_string()),
            ("GAVEL_PREFETCH_KBYTES", self.prefetch_kbytes.to_string()),
            (
                "GAVEL_BATCH_LINGER_MS",
                self.batch_linger.as_millis().to_string(),
            ),
            ("GAVEL_METRICS_ADDR", self.metrics_addr.clone()),
            ("GAVEL_STATUS_WORKERS", self.status_workers.join(",")),
            ("GAVEL_LAG_WATCH", joined_pairs.join(",")),
            ("GAVEL_JWT_SECRET", self.jwt_secret.expose().to_owned()),
            (
                "GAVEL_COMMAND_TIMEOUT_MS",
                self.command_timeout.as_millis().to_string(),
            ),
            ("GAVEL_OUTBOX_SCHEMA", self.outbox_schema.clone()),
            ("GAVEL_OUTBOX_BATCH", self.outbox_batch.to_string()),
            (
                "GAVEL_OUTBOX_POLL_MS",
                self.outbox_poll.as_millis().to_string(),
            ),
            ("GAVEL_OUTBOX_DLQ_TOPIC", self.outbox_dlq_topic.clone()),
            (
                "GAVEL_CLOSED_RETENTION_SECS",
                self.closed_retention.as_secs().to_string(),
            ),
            ("GAVEL_OUTBOX_ALLOWED_TOPICS", self.outbox_allowed.join(",")),
        ];
        env.extend(self.http.to_env());
        env
    }

    /// The topics the outbox relay may publish to: `GAVEL_OUTBOX_ALLOWED_TOPICS`,
    /// or by default the two an upstream service feeds the pipeline through
    /// (commands, order events). Events, views, outcomes and saga topics are
    /// written by the pipeline's own exactly-once stages, never by an outbox.
    pub fn outbox_allowed_topics(&self) -> Vec<String> {
        if self.outbox_allowed.is_empty() {
            vec![self.topics.commands.clone(), self.topics.orders.clone()]
        } else {
            self.outbox_allowed.clone()
        }
    }

    /// The local defaults, untouched by file or environment (for tests).
    pub fn defaults() -> Result<Self> {
        Self::from_map(&default_values())
    }
}

fn default_values() -> HashMap<String, String> {
    SETTINGS
        .iter()
        .map(|(k, v, _)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn merge_path(values: &mut HashMap<String, String>, path: &str) -> Result<()> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| RuntimeError::Config(format!("reading {path}: {e}")))?;
    merge_file(values, &text)
}

fn merge_file(values: &mut HashMap<String, String>, text: &str) -> Result<()> {
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line.split_once('=').ok_or_else(|| {
            RuntimeError::Config(format!(
                "line {}: expected KEY=VALUE, got {line:?}",
                number + 1
            ))
        })?;
        let key = key.trim();
        if !SETTINGS.iter().any(|(k, _, _)| *k == key) {
            return Err(RuntimeError::Config(format!(
                "line {}: unknown setting {key}",
                number + 1
            )));
        }
        values.insert(key.to_owned(), value.trim().to_owned());
    }
    Ok(())
}

pub(crate) fn number<T: std::str::FromStr>(
    values: &HashMap<String, String>,
    key: &str,
) -> Result<T> {
    let raw = values.get(key).map(String::as_str).unwrap_or_default();
    raw.parse()
        .map_err(|_| RuntimeError::Config(format!("{key} must be a number, got {raw:?}")))
}

/// A size, count or duration that must be above zero (a batch of 0 rows would
/// make a worker spin; a timeout of 0 would refuse everything).
pub(crate) fn positive(values: &HashMap<String, String>, key: &str) -> Result<i64> {
    match number(values, key)? {
        n if n > 0 => Ok(n),
        n => Err(RuntimeError::Config(format!(
            "{key} must be positive, got {n}"
        ))),
    }
}

/// librdkafka's queue bound, at least the 1 MiB partition fetch (so any
/// record can be queued) and at most what librdkafka accepts.
fn prefetch_kbytes(values: &HashMap<String, String>) -> Result<usize> {
    const RANGE: std::ops::RangeInclusive<usize> = 1024..=2_097_151;
    match number(values, "GAVEL_PREFETCH_KBYTES")? {
        n if RANGE.contains(&n) => Ok(n),
        n => Err(RuntimeError::Config(format!(
            "GAVEL_PREFETCH_KBYTES must be within {RANGE:?} KiB, got {n}"
        ))),
    }
}

fn list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn pairs(raw: &str) -> Result<Vec<(String, String)>> {
    list(raw)
        .into_iter()
        .map(|pair| match pair.split_once('=') {
            Some((group, topic)) if !group.is_empty() && !topic.is_empty() => {
                Ok((group.to_owned(), topic.to_owned()))
            }
            _ => Err(RuntimeError::Config(format!(
                "GAVEL_LAG_WATCH entries are group=topic, got {pair:?}"
            ))),
        })
        .collect()
}

/// A Postgres schema name goes into SQL text, so only plain identifiers pass.
fn identifier(key: &str, name: &str) -> Result<String> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if valid {
        Ok(name.to_owned())
    } else {
        Err(RuntimeError::Config(format!(
            "{key} must be a lower-case identifier, got {name:?}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_env_names_every_setting_and_loads_back_the_same_config() {
        let mut config = Config::defaults().unwrap().isolated("envtest");
        config.lag_watch = vec![("g".into(), "t".into())];
        config.status_workers = vec!["127.0.0.1:1".into(), "127.0.0.1:2".into()];
        let env = config.to_env();
        for (key, _, _) in SETTINGS {
            assert!(env.iter().any(|(k, _)| k == key), "{key} missing");
        }
        let values = env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        assert_eq!(Config::from_map(&values).unwrap(), config);
    }

    #[test]
    fn defaults_point_at_the_local_stack() {
        let config = Config::defaults().unwrap();
        assert_eq!(config.kafka_bootstrap, "127.0.0.1:9092");
        assert_eq!(config.topics.commands, "auction.commands");
        assert_eq!(config.partitions, 6);
        assert_eq!(
            config.outbox_allowed_topics(),
            ["auction.commands", "order.events"]
        );
        let listed = config
            .with_overrides([("GAVEL_OUTBOX_ALLOWED_TOPICS", " a.events , b.events,")])
            .expect("a list");
        assert_eq!(listed.outbox_allowed_topics(), ["a.events", "b.events"]);
    }

    #[test]
    fn a_file_overrides_defaults_and_rejects_unknown_keys() {
        let mut values: HashMap<String, String> = SETTINGS
            .iter()
            .map(|(k, v, _)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        merge_file(&mut values, "# comment\nGAVEL_PARTITIONS = 12\n").unwrap();
        assert_eq!(Config::from_map(&values).unwrap().partitions, 12);
        merge_file(&mut values, "GAVEL_OUTBOX_BATCH=0").unwrap();
        assert!(Config::from_map(&values).is_err(), "a batch of 0 rows");
        merge_file(
            &mut values,
            "GAVEL_OUTBOX_BATCH=100\nGAVEL_PREFETCH_KBYTES=512",
        )
        .unwrap();
        assert!(
            Config::from_map(&values).is_err(),
            "a queue below one fetch"
        );
        merge_file(&mut values, "GAVEL_PREFETCH_KBYTES=4096").unwrap();
        assert_eq!(Config::from_map(&values).unwrap().prefetch_kbytes, 4096);
        assert!(merge_file(&mut values, "GAVEL_NOPE=1").is_err());
        assert!(merge_file(&mut values, "no equals sign").is_err());
    }

    #[test]
    fn schema_names_must_be_plain_identifiers() {
        assert!(identifier("K", "gavel_test_1").is_ok());
        assert!(identifier("K", "x; drop table y").is_err());
        assert!(identifier("K", "1abc").is_err());
    }
}
