//! Registers the `.avsc` files of `schemas/` with the registry: subject per
//! TopicRecordNameStrategy (`<topic>-<record full name>`), each subject pinned
//! to the compatibility level of its folder (see [`placements`]). An
//! incompatible change is refused with the registry's words.

use crate::config::Topics;
use crate::kafka::SAGA_KINDS;
use crate::registry_endpoint::RegistryEndpoint;
use crate::{Result, RuntimeError};
use gavel_domain::saga::Participant;
use serde_json::{json, Value as Json};
use std::path::{Path, PathBuf};

/// The level of records one team both writes and reads (commands, events,
/// outcomes): readers upgrade first, so a new schema must read every old record.
pub const COMPATIBILITY: &str = "BACKWARD_TRANSITIVE";

/// The level of a contract with services other teams own (the saga step
/// commands and replies): either side may upgrade first, so every version
/// must read, and be readable by, every other.
pub const CONTRACT_COMPATIBILITY: &str = "FULL_TRANSITIVE";

/// One schema file and the topic its records travel on.
#[derive(Debug, Clone)]
pub struct SchemaFile {
    pub path: PathBuf,
    pub topic: String,
    pub record_name: String,
    pub text: String,
    /// The level its subject is pinned to.
    pub compatibility: &'static str,
}

impl SchemaFile {
    pub fn subject(&self) -> String {
        format!("{}-{}", self.topic, self.record_name)
    }
}

/// What the registry says of one schema file, asked without registering it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No version registered under the subject yet: `register` would add the first.
    NewSubject,
    /// Readable against every registered version (at the subject's level).
    Compatible { versions: usize },
    /// The registry refuses it against a registered version; `reason` names
    /// that version and the field or type (the registry answers only yes or
    /// no, so the reason is the Avro library's own resolution check of the
    /// same pair).
    Incompatible { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    pub subject: String,
    pub id: u64,
}

/// Records of one folder of `schemas/` (all of them, or the one `record`
/// names): the topics they travel on and the level their subjects hold.
pub struct Placement {
    pub folder: &'static str,
    pub record: Option<&'static str>,
    pub topics: Vec<String>,
    pub compatibility: &'static str,
}

impl Placement {
    fn of(folder: &'static str, topics: Vec<String>, compatibility: &'static str) -> Self {
        Self {
            folder,
            record: None,
            topics,
            compatibility,
        }
    }

    fn only(self, record: &'static str) -> Self {
        Self {
            record: Some(record),
            ..self
        }
    }
}

/// Where each record of `schemas/` is registered. A step command goes to
/// every participant's topic, a reply, milestone or failure record to every
/// saga kind's topic of that part.
pub fn placements(topics: &Topics) -> Vec<Placement> {
    let own = |folder, topic: &String| Placement::of(folder, vec![topic.clone()], COMPATIBILITY);
    let shared =
        |folder, topic: &String| Placement::of(folder, vec![topic.clone()], CONTRACT_COMPATIBILITY);
    let every_saga = |folder, part: &str, compatibility| {
        let topics = SAGA_KINDS.iter().map(|kind| topics.saga(kind, part));
        Placement::of(folder, topics.collect(), compatibility)
    };
    let participants = Participant::ALL
        .iter()
        .map(|p| topics.participant_commands(p.as_str()));
    vec![
        own("commands", &topics.commands),
        own("events", &topics.events),
        own("outcomes", &topics.outcomes),
        shared("orders", &topics.orders),
        shared("views", &topics.view_details).only("dev.gavel.views.AuctionDetails"),
        shared("views", &topics.view_list).only("dev.gavel.views.AuctionListItem"),
        shared("views", &topics.view_user_bids).only("dev.gavel.views.UserBid"),
        Placement::of(
            "saga-commands",
            participants.collect(),
            CONTRACT_COMPATIBILITY,
        ),
        every_saga("saga-replies", "replies", CONTRACT_COMPATIBILITY),
        every_saga("saga-milestones", "milestones", CONTRACT_COMPATIBILITY),
        every_saga("saga-failed", "failed", COMPATIBILITY),
    ]
}

/// Reads every folder of [`placements`], one [`SchemaFile`] per file and topic.
pub fn load_schema_dir(dir: &Path, topics: &Topics) -> Result<Vec<SchemaFile>> {
    let mut files = Vec::new();
    for placement in placements(topics) {
        let folder_path = dir.join(placement.folder);
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&folder_path)
            .map_err(|e| RuntimeError::Config(format!("reading {}: {e}", folder_path.display())))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|ext| ext == "avsc"))
            .collect();
        paths.sort();
        for path in paths {
            let file = read_schema_file(path, placement.compatibility)?;
            if placement.record.is_some_and(|r| r != file.record_name) {
                continue;
            }
            for topic in &placement.topics {
                files.push(SchemaFile {
                    topic: topic.clone(),
                    ..file.clone()
                });
            }
        }
    }
    Ok(files)
}

fn read_schema_file(path: PathBuf, compatibility: &'static str) -> Result<SchemaFile> {
    let text = std::fs::read_to_string(&path)?;
    let parsed = apache_avro::Schema::parse_str(&text)
        .map_err(|e| RuntimeError::Avro(format!("{}: {e}", path.display())))?;
    let record_name = match &parsed {
        apache_avro::Schema::Record(record) => record.name.fullname(None),
        _ => {
            return Err(RuntimeError::Avro(format!(
                "{}: top level must be a record",
                path.display()
            )))
        }
    };
    Ok(SchemaFile {
        path,
        topic: String::new(),
        record_name,
        text,
        compatibility,
    })
}

pub struct RegistryClient {
    endpoint: RegistryEndpoint,
    http: reqwest::Client,
}

impl RegistryClient {
    pub fn new(endpoint: &RegistryEndpoint) -> Self {
        // A stalled registry call must fail, not hang the caller forever.
        let http = endpoint
            .client_builder(std::time::Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        Self {
            endpoint: endpoint.clone(),
            http,
        }
    }

    /// Registers one schema under its subject and pins the subject's compatibility.
    pub async fn register(&self, file: &SchemaFile) -> Result<Registered> {
        let subject = file.subject();
        let body = json!({ "schema": file.text, "schemaType": "AVRO" });
        let response = self
            .call(
                reqwest::Method::POST,
                &format!("subjects/{subject}/versions"),
                body,
            )
            .await?;
        let id = response
            .get("id")
            .and_then(Json::as_u64)
            .ok_or_else(|| RuntimeError::Registry(format!("{subject}: no id in {response}")))?;
        self.set_compatibility(&subject, file.compatibility).await?;
        Ok(Registered { subject, id })
    }

    /// The id `schema` (Avro JSON) has under `subject`, `None` when it is not
    /// registered there: a writer writes with the schema it was built with,
    /// so a newer version registered beside it changes nothing for it. An
    /// unreachable registry or a 5xx is `RegistryUnavailable`.
    pub async fn lookup(&self, subject: &str, schema: &str) -> Result<Option<u32>> {
        let url = format!("{}/subjects/{subject}", self.endpoint.url);
        let body = json!({ "schema": schema, "schemaType": "AVRO" });
        let unavailable = |e: String| RuntimeError::RegistryUnavailable(format!("{url}: {e}"));
        let (status, text) = self
            .send(reqwest::Method::POST, &url, &body)
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let Some(answer) = answer_or_not_found(subject, &url, status, &text)? else {
            return Ok(None);
        };
        answer
            .get("id")
            .and_then(Json::as_u64)
            .and_then(|id| u32::try_from(id).ok())
            .map(Some)
            .ok_or_else(|| RuntimeError::Registry(format!("{subject}: no id in {answer}")))
    }

    /// Registers `schema` (Avro JSON) under any `subject`, leaving its
    /// compatibility alone: what any client that reaches the registry can do.
    pub async fn register_raw(&self, subject: &str, schema: &str) -> Result<u64> {
        let body = json!({ "schema": schema, "schemaType": "AVRO" });
        let path = format!("subjects/{subject}/versions");
        let response = self.call(reqwest::Method::POST, &path, body).await?;
        response
            .get("id")
            .and_then(Json::as_u64)
            .ok_or_else(|| RuntimeError::Registry(format!("{subject}: no id in {response}")))
    }

    /// Asks the registry whether `file` could be registered, against every
    /// version of its subject (so the check is transitive whatever the
    /// registry's own reading of the level), registering nothing.
    pub async fn check(&self, file: &SchemaFile) -> Result<Verdict> {
        let subject = file.subject();
        let versions = self.versions(&subject).await?;
        if versions.is_empty() {
            return Ok(Verdict::NewSubject);
        }
        let body = json!({ "schema": file.text, "schemaType": "AVRO" });
        for version in &versions {
            let path = format!("compatibility/subjects/{subject}/versions/{version}");
            let answer = self
                .call(reqwest::Method::POST, &path, body.clone())
                .await?;
            match answer.get("is_compatible").and_then(Json::as_bool) {
                Some(true) => {}
                Some(false) => {
                    let reason = self.why_incompatible(&subject, *version, file).await?;
                    return Ok(Verdict::Incompatible { reason });
                }
                None => {
                    return Err(RuntimeError::Registry(format!(
                        "{path}: no is_compatible in {answer}"
                    )))
                }
            }
        }
        Ok(Verdict::Compatible {
            versions: versions.len(),
        })
    }

    /// The versions registered under `subject` (none for an unknown subject).
    pub async fn versions(&self, subject: &str) -> Result<Vec<u64>> {
        let listed = self
            .read_optional(&format!("subjects/{subject}/versions"))
            .await?;
        Ok(listed
            .as_ref()
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
            .filter_map(Json::as_u64)
            .collect())
    }

    /// Why data written with `version` cannot be read with `file`'s schema.
    async fn why_incompatible(
        &self,
        subject: &str,
        version: u64,
        file: &SchemaFile,
    ) -> Result<String> {
        let registered = self
            .read(&format!("subjects/{subject}/versions/{version}"))
            .await?;
        let old_text = registered
            .get("schema")
            .and_then(Json::as_str)
            .unwrap_or_default();
        let parse = |text: &str| {
            apache_avro::Schema::parse_str(text).map_err(|e| RuntimeError::Avro(e.to_string()))
        };
        let (old, new) = (parse(old_text)?, parse(&file.text)?);
        use apache_avro::schema_compatibility::SchemaCompatibility;
        let level = file.compatibility;
        if let Err(error) = SchemaCompatibility::can_read(&old, &new) {
            return Ok(format!(
                "records written with version {version} cannot be read: {error}"
            ));
        }
        if level.starts_with("FULL") {
            if let Err(error) = SchemaCompatibility::can_read(&new, &old) {
                return Ok(format!(
                    "readers of version {version} cannot read its records ({level}): {error}"
                ));
            }
        }
        Ok(format!(
            "the registry refuses it against version {version} under {level}"
        ))
    }

    pub async fn set_compatibility(&self, subject: &str, level: &str) -> Result<()> {
        let body = json!({ "compatibility": level });
        self.call(reqwest::Method::PUT, &format!("config/{subject}"), body)
            .await?;
        Ok(())
    }

    pub async fn set_global_compatibility(&self) -> Result<()> {
        self.call(
            reqwest::Method::PUT,
            "config",
            json!({ "compatibility": COMPATIBILITY }),
        )
        .await?;
        Ok(())
    }

    /// Subject names currently registered.
    pub async fn subjects(&self) -> Result<Vec<String>> {
        let url = format!("{}/subjects", self.endpoint.url);
        let response = self
            .endpoint
            .authorize(self.http.get(&url))
            .send()
            .await
            .map_err(http_error(&url))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(RuntimeError::Registry(format!(
                "subjects: HTTP {status}: {}",
                registry_message(&text)
            )));
        }
        let value: Json = response.json().await.map_err(http_error(&url))?;
        Ok(value
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Every schema id registered under a subject that starts with one of
    /// `prefixes` (a consumed topic's `<topic>-`): what a consumer may decode.
    /// A registry that does not answer is `RegistryUnavailable` (retry later).
    pub async fn ids_under(&self, prefixes: &[String]) -> Result<std::collections::HashSet<u32>> {
        let subjects = self.read("subjects").await?;
        let mut ids = std::collections::HashSet::new();
        let names = subjects
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Json::as_str);
        for subject in names.filter(|s| prefixes.iter().any(|p| s.starts_with(p.as_str()))) {
            let versions = self.read(&format!("subjects/{subject}/versions")).await?;
            for version in versions
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Json::as_u64)
            {
                let schema = self
                    .read(&format!("subjects/{subject}/versions/{version}"))
                    .await?;
                if let Some(id) = schema.get("id").and_then(Json::as_u64) {
                    ids.insert(u32::try_from(id).unwrap_or(u32::MAX));
                }
            }
        }
        Ok(ids)
    }

    /// One GET; an unreachable registry or a 5xx is `RegistryUnavailable`.
    async fn read(&self, path: &str) -> Result<Json> {
        self.read_optional(path)
            .await?
            .ok_or_else(|| RuntimeError::Registry(format!("{path}: HTTP 404 Not Found")))
    }

    /// [`Self::read`], with a 404 as `None`.
    async fn read_optional(&self, path: &str) -> Result<Option<Json>> {
        let url = format!("{}/{path}", self.endpoint.url);
        let unavailable = |e: String| RuntimeError::RegistryUnavailable(format!("{url}: {e}"));
        let response = self
            .endpoint
            .authorize(self.http.get(&url))
            .timeout(std::time::Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        answer_or_not_found(path, &url, status, &text)
    }

    /// Deletes a subject (soft then hard), for tests that clean up after
    /// themselves. Whatever the registry answers is accepted (the subject may
    /// be gone already); a dropped connection is retried like any call here.
    pub async fn delete_subject(&self, subject: &str) -> Result<()> {
        for suffix in ["", "?permanent=true"] {
            let url = format!("{}/subjects/{subject}{suffix}", self.endpoint.url);
            let mut attempt = 0;
            loop {
                attempt += 1;
                match self.endpoint.authorize(self.http.delete(&url)).send().await {
                    Ok(_) => break,
                    Err(error) if attempt < 4 => {
                        tracing::warn!(%error, attempt, "registry call failed; retrying");
                        tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
                    }
                    Err(error) => return Err(http_error(&url)(error)),
                }
            }
        }
        Ok(())
    }

    /// One registry call. Transport failures (a pooled connection the server
    /// dropped, a stall) are retried: every call here is idempotent.
    async fn call(&self, method: reqwest::Method, path: &str, body: Json) -> Result<Json> {
        let url = format!("{}/{path}", self.endpoint.url);
        let mut attempt = 0;
        let (status, text) = loop {
            attempt += 1;
            match self.send(method.clone(), &url, &body).await {
                // A proxy in front of the registry answers 502-504 while the
                // registry restarts or drops a connection; every call here is
                // idempotent (the same schema gets its id again), so retry.
                Ok((status, _)) if is_gateway_error(status) && attempt < 4 => {
                    tracing::warn!(%status, attempt, "registry call failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
                }
                Ok(answer) => break answer,
                Err(error) if attempt < 4 => {
                    tracing::warn!(%error, attempt, "registry call failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
                }
                Err(error) => return Err(http_error(&url)(error)),
            }
        };
        if !status.is_success() {
            return Err(RuntimeError::Registry(format!(
                "{path}: HTTP {status}: {}",
                registry_message(&text)
            )));
        }
        serde_json::from_str(&text)
            .map_err(|e| RuntimeError::Registry(format!("{path}: bad JSON {e}: {text}")))
    }
}

fn is_gateway_error(status: reqwest::StatusCode) -> bool {
    matches!(status.as_u16(), 502..=504)
}

impl RegistryClient {
    async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        body: &Json,
    ) -> reqwest::Result<(reqwest::StatusCode, String)> {
        let response = self
            .endpoint
            .authorize(self.http.request(method, url))
            .header("content-type", "application/vnd.schemaregistry.v1+json")
            .json(body)
            .send()
            .await?;
        let status = response.status();
        Ok((status, response.text().await?))
    }
}

/// A registry answer as JSON, `None` for a 404; a 5xx is
/// `RegistryUnavailable` (the caller may wait), any other failure names
/// `label` and the registry's own words.
fn answer_or_not_found(
    label: &str,
    url: &str,
    status: reqwest::StatusCode,
    text: &str,
) -> Result<Option<Json>> {
    // A refused credential, a timeout or rate limiting says nothing about the
    // record being read: waited out (unready, with the status), never poison.
    let passing = [
        reqwest::StatusCode::UNAUTHORIZED,
        reqwest::StatusCode::FORBIDDEN,
        reqwest::StatusCode::REQUEST_TIMEOUT,
        reqwest::StatusCode::TOO_MANY_REQUESTS,
    ];
    if status.is_server_error() || passing.contains(&status) {
        return Err(RuntimeError::RegistryUnavailable(format!(
            "{url}: HTTP {status}: {}",
            registry_message(text)
        )));
    }
    if status == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !status.is_success() {
        return Err(RuntimeError::Registry(format!(
            "{label}: HTTP {status}: {}",
            registry_message(text)
        )));
    }
    serde_json::from_str(text)
        .map(Some)
        .map_err(|e| RuntimeError::Registry(format!("{label}: bad JSON {e}")))
}

/// The registry's own words: Confluent-style `{"error_code":..,"message":..}` or the raw body.
fn registry_message(body: &str) -> String {
    serde_json::from_str::<Json>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(Json::as_str).map(str::to_owned))
        .unwrap_or_else(|| body.to_owned())
}

fn http_error(url: &str) -> impl Fn(reqwest::Error) -> RuntimeError + '_ {
    move |e| RuntimeError::Registry(format!("{url}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_file_is_registered_somewhere_with_a_stated_level() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
        let topics = crate::Config::defaults().expect("defaults").topics;
        let files = load_schema_dir(&dir, &topics).expect("schemas load");
        let placed: std::collections::HashSet<_> = files.iter().map(|f| &f.path).collect();
        let on_disk: usize = placements(&topics)
            .iter()
            .map(|p| p.folder)
            .collect::<std::collections::HashSet<_>>()
            .into_iter()
            .map(|folder| std::fs::read_dir(dir.join(folder)).expect("folder").count())
            .sum();
        assert_eq!(placed.len(), on_disk, "a file no placement takes");
        let subjects: std::collections::HashSet<_> =
            files.iter().map(SchemaFile::subject).collect();
        assert_eq!(subjects.len(), files.len(), "two files under one subject");
        for file in &files {
            let contract = file.topic.starts_with("saga.") && !file.topic.ends_with(".failed")
                || file.topic.starts_with("view.")
                || file.topic == topics.orders;
            let expected = if contract {
                CONTRACT_COMPATIBILITY
            } else {
                COMPATIBILITY
            };
            assert_eq!(file.compatibility, expected, "{}", file.subject());
        }
    }
}
