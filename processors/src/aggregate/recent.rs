//! The recent commands of one auction, kept packed: every entry is a few dozen
//! bytes in one buffer, in the same form the changelog record carries them.
//! An auction remembers up to `REMEMBERED_COMMANDS` outcomes, and every
//! changed auction is written to the changelog once per transaction, so this
//! is most of the aggregate's memory and most of its changelog bytes: as JSON
//! with owned strings it cost about 5 KB per auction in memory and on the
//! wire, and its string escaping was the aggregate thread's largest cost.
//!
//! Entry layout (integers are LEB128 varints, signed ones zigzag):
//! `flags, command id, [correlation id], actor, command type, [version],
//! event count, [rejection code], [reason], decided at`. Ids that are
//! canonical UUIDs take 16 bytes; a correlation id equal to the command id
//! takes none. Each entry is preceded by its length, so a lookup skips
//! entries without decoding them.

use gavel_domain::Timestamp;
use gavel_runtime::auction_codec::CommandOutcome;

/// How many command outcomes per auction are remembered for deduplication.
/// Retries come within seconds; a window of this many commands per auction
/// covers them under any realistic bidding rate.
pub const REMEMBERED_COMMANDS: usize = 32;

const ID_IS_UUID: u8 = 1;
const CORRELATION_IS_ID: u8 = 2;
const CORRELATION_IS_UUID: u8 = 4;
const HAS_VERSION: u8 = 8;
const HAS_CODE: u8 = 16;
const HAS_REASON: u8 = 32;
const KNOWN_FLAGS: u8 = 63;

/// A malformed packed entry (a changelog record this build cannot read).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("packed state: {0}")]
pub struct Malformed(&'static str);

/// Up to `REMEMBERED_COMMANDS` outcomes, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecentCommands {
    /// Length-prefixed entries, back to back.
    packed: Vec<u8>,
    len: usize,
}

impl RecentCommands {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Remembers `outcome`, forgetting the oldest one when the window is full.
    /// The buffer is rebuilt at its exact size: a growing `Vec` would keep up
    /// to twice the bytes per auction, and copying about a kilobyte costs less
    /// than the decision it records.
    pub fn push(&mut self, outcome: &CommandOutcome) {
        let mut entry = Vec::with_capacity(64);
        encode_entry(&mut entry, outcome);
        // Bytes of the window left out, and the entries after this push.
        let (kept, len) = match (self.len == REMEMBERED_COMMANDS).then(|| self.oldest_end()) {
            None => (0, self.len + 1),
            Some(Some(end)) => (end, self.len),
            Some(None) => (self.packed.len(), 1),
        };
        let mut packed = Vec::with_capacity(self.packed.len() - kept + entry.len() + 2);
        packed.extend_from_slice(&self.packed[kept..]);
        put_varint(&mut packed, entry.len() as u64);
        packed.extend_from_slice(&entry);
        self.packed = packed;
        self.len = len;
    }

    /// Where the oldest entry ends. Only `push` and `from_packed` (which
    /// checks every entry) write the buffer, so it parses; were it not to,
    /// `None` has the whole window dropped rather than a panic.
    fn oldest_end(&self) -> Option<usize> {
        let mut reader = Reader::new(&self.packed);
        let len = reader.len().ok()?;
        reader
            .at
            .checked_add(len)
            .filter(|end| *end <= self.packed.len())
    }

    /// The remembered outcome of `command_id`, completed with what the
    /// aggregate knows (its id and tenant).
    pub fn find(
        &self,
        command_id: &str,
        aggregate_id: &str,
        tenant_id: &str,
    ) -> Option<CommandOutcome> {
        let wanted = Id::of(command_id);
        self.entries()
            .find(|entry| entry_id_is(entry, &wanted))
            .and_then(|entry| read_entry(entry).ok())
            .map(|entry| entry.to_outcome(aggregate_id, tenant_id))
    }

    /// The entries as the changelog stores them.
    pub fn packed(&self) -> &[u8] {
        &self.packed
    }

    /// Reads entries written by [`Self::packed`], checking every one; keeps the
    /// newest `REMEMBERED_COMMANDS`.
    pub fn from_packed(packed: &[u8]) -> Result<Self, Malformed> {
        let mut reader = Reader::new(packed);
        let mut starts = Vec::new();
        while !reader.done() {
            starts.push(reader.at);
            let len = reader.len()?;
            let entry = reader.take(len)?;
            read_entry(entry)?;
        }
        let skip = starts.len().saturating_sub(REMEMBERED_COMMANDS);
        let from = starts.get(skip).copied().unwrap_or(packed.len());
        Ok(Self {
            packed: packed[from..].to_vec(),
            len: starts.len() - skip,
        })
    }

    fn entries(&self) -> impl Iterator<Item = &[u8]> {
        let mut reader = Reader::new(&self.packed);
        std::iter::from_fn(move || {
            let len = reader.len().ok()?;
            reader.take(len).ok()
        })
    }
}

/// A command or correlation id: 16 bytes when canonical, else its text.
#[derive(PartialEq, Eq)]
enum Id<'a> {
    Uuid([u8; 16]),
    Text(&'a str),
}

impl<'a> Id<'a> {
    fn of(text: &'a str) -> Self {
        canonical_uuid(text).map_or(Id::Text(text), Id::Uuid)
    }

    fn to_text(&self) -> String {
        match self {
            Id::Uuid(bytes) => uuid::Uuid::from_bytes(*bytes).hyphenated().to_string(),
            Id::Text(text) => (*text).to_owned(),
        }
    }
}

/// The bytes of `text` if it is a UUID written the way it would be printed
/// again (hyphenated, lower case), so decoding gives back the same text.
fn canonical_uuid(text: &str) -> Option<[u8; 16]> {
    if text.len() != 36 {
        return None;
    }
    let uuid = uuid::Uuid::try_parse(text).ok()?;
    let mut printed = [0u8; 36];
    let again = uuid.hyphenated().encode_lower(&mut printed);
    (again == text).then(|| *uuid.as_bytes())
}

/// Reads only as far as the command id: the lookup's fast path.
fn entry_id_is(entry: &[u8], wanted: &Id<'_>) -> bool {
    let mut reader = Reader::new(entry);
    reader
        .byte()
        .and_then(|flags| reader.id(flags & ID_IS_UUID != 0))
        .is_ok_and(|id| id == *wanted)
}

fn encode_entry(out: &mut Vec<u8>, outcome: &CommandOutcome) {
    let id = Id::of(&outcome.command_id);
    let correlation =
        (outcome.correlation_id != outcome.command_id).then(|| Id::of(&outcome.correlation_id));
    let mut flags = 0;
    if matches!(id, Id::Uuid(_)) {
        flags |= ID_IS_UUID;
    }
    match &correlation {
        None => flags |= CORRELATION_IS_ID,
        Some(Id::Uuid(_)) => flags |= CORRELATION_IS_UUID,
        Some(Id::Text(_)) => {}
    }
    if outcome.new_version.is_some() {
        flags |= HAS_VERSION;
    }
    if outcome.rejection_code.is_some() {
        flags |= HAS_CODE;
    }
    if outcome.reason.is_some() {
        flags |= HAS_REASON;
    }
    out.push(flags);
    put_id(out, &id);
    if let Some(correlation) = &correlation {
        put_id(out, correlation);
    }
    put_str(out, &outcome.actor_id);
    put_str(out, &outcome.command_type);
    if let Some(version) = outcome.new_version {
        put_varint(out, version);
    }
    put_varint(out, zigzag(i64::from(outcome.event_count)));
    if let Some(code) = &outcome.rejection_code {
        put_str(out, code);
    }
    if let Some(reason) = &outcome.reason {
        put_str(out, reason);
    }
    put_varint(out, zigzag(outcome.decided_at.millis()));
}

/// One entry read in place: every field checked, nothing copied, so a
/// restore can check a record's entries without allocating.
struct Entry<'a> {
    command_id: Id<'a>,
    /// `None`: the same as the command id.
    correlation_id: Option<Id<'a>>,
    actor_id: &'a str,
    command_type: &'a str,
    new_version: Option<u64>,
    event_count: i32,
    rejection_code: Option<&'a str>,
    reason: Option<&'a str>,
    decided_at: i64,
}

fn read_entry(entry: &[u8]) -> Result<Entry<'_>, Malformed> {
    let mut reader = Reader::new(entry);
    let flags = reader.byte()?;
    if flags & !KNOWN_FLAGS != 0 {
        return Err(Malformed("unknown flags"));
    }
    let command_id = reader.id(flags & ID_IS_UUID != 0)?;
    let correlation_id = (flags & CORRELATION_IS_ID == 0)
        .then(|| reader.id(flags & CORRELATION_IS_UUID != 0))
        .transpose()?;
    let actor_id = reader.str()?;
    let command_type = reader.str()?;
    let new_version = (flags & HAS_VERSION != 0)
        .then(|| reader.varint())
        .transpose()?;
    let event_count = i32::try_from(unzigzag(reader.varint()?))
        .map_err(|_| Malformed("event count out of range"))?;
    let rejection_code = (flags & HAS_CODE != 0).then(|| reader.str()).transpose()?;
    let reason = (flags & HAS_REASON != 0)
        .then(|| reader.str())
        .transpose()?;
    let decided_at = unzigzag(reader.varint()?);
    if !reader.done() {
        return Err(Malformed("trailing bytes in an entry"));
    }
    Ok(Entry {
        command_id,
        correlation_id,
        actor_id,
        command_type,
        new_version,
        event_count,
        rejection_code,
        reason,
        decided_at,
    })
}

impl Entry<'_> {
    fn to_outcome(&self, aggregate_id: &str, tenant_id: &str) -> CommandOutcome {
        let command_id = self.command_id.to_text();
        CommandOutcome {
            correlation_id: self
                .correlation_id
                .as_ref()
                .map_or_else(|| command_id.clone(), Id::to_text),
            command_id,
            tenant_id: tenant_id.to_owned(),
            actor_id: self.actor_id.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
            command_type: self.command_type.to_owned(),
            accepted: self.rejection_code.is_none(),
            new_version: self.new_version,
            event_count: self.event_count,
            rejection_code: self.rejection_code.map(str::to_owned),
            reason: self.reason.map(str::to_owned),
            decided_at: Timestamp::from_millis(self.decided_at),
        }
    }
}

fn put_id(out: &mut Vec<u8>, id: &Id<'_>) {
    match id {
        Id::Uuid(bytes) => out.extend_from_slice(bytes),
        Id::Text(text) => put_str(out, text),
    }
}

pub(super) fn put_str(out: &mut Vec<u8>, text: &str) {
    put_varint(out, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
}

pub(super) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

/// A bounds-checked cursor over packed bytes: malformed input is an error,
/// never a panic or an allocation larger than the input.
pub(super) struct Reader<'a> {
    bytes: &'a [u8],
    pub(super) at: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    pub(super) fn done(&self) -> bool {
        self.at == self.bytes.len()
    }

    pub(super) fn rest(&self) -> &'a [u8] {
        &self.bytes[self.at..]
    }

    pub(super) fn byte(&mut self) -> Result<u8, Malformed> {
        let byte = *self.bytes.get(self.at).ok_or(Malformed("truncated"))?;
        self.at += 1;
        Ok(byte)
    }

    pub(super) fn take(&mut self, len: usize) -> Result<&'a [u8], Malformed> {
        let end = self.at.checked_add(len).ok_or(Malformed("truncated"))?;
        let taken = self.bytes.get(self.at..end).ok_or(Malformed("truncated"))?;
        self.at = end;
        Ok(taken)
    }

    pub(super) fn varint(&mut self) -> Result<u64, Malformed> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Malformed("varint too long"))
    }

    pub(super) fn len(&mut self) -> Result<usize, Malformed> {
        usize::try_from(self.varint()?).map_err(|_| Malformed("length out of range"))
    }

    pub(super) fn str(&mut self) -> Result<&'a str, Malformed> {
        let len = self.len()?;
        std::str::from_utf8(self.take(len)?).map_err(|_| Malformed("text is not UTF-8"))
    }

    fn id(&mut self, uuid: bool) -> Result<Id<'a>, Malformed> {
        if uuid {
            let bytes: [u8; 16] = self
                .take(16)?
                .try_into()
                .map_err(|_| Malformed("truncated"))?;
            Ok(Id::Uuid(bytes))
        } else {
            self.str().map(Id::Text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(command_id: &str, correlation_id: &str) -> CommandOutcome {
        CommandOutcome {
            command_id: command_id.into(),
            correlation_id: correlation_id.into(),
            tenant_id: "t1".into(),
            actor_id: "u-7".into(),
            aggregate_id: "a1".into(),
            command_type: "PlaceBid".into(),
            accepted: true,
            new_version: Some(300),
            event_count: 1,
            rejection_code: None,
            reason: None,
            decided_at: Timestamp::from_millis(1_765_000_000_123),
        }
    }

    fn refused(command_id: &str) -> CommandOutcome {
        CommandOutcome {
            accepted: false,
            new_version: None,
            event_count: 0,
            rejection_code: Some("BID_TOO_LOW".into()),
            reason: Some("bid 10 EUR is below the minimum 12 EUR".into()),
            decided_at: Timestamp::from_millis(-5),
            ..outcome(command_id, "corr-1")
        }
    }

    const UUID: &str = "0192f0c4-7d1e-7a3b-9c2d-4e5f60718293";
    const UUID_2: &str = "5f3c1a2b-0d4e-4f60-8a7b-9c0d1e2f3a4b";
    const UUID_3: &str = "00000000-0000-4000-8000-000000000000";

    #[test]
    fn every_kind_of_outcome_comes_back_as_it_was() {
        let cases = [
            outcome(UUID, UUID),
            outcome(UUID_2, UUID),
            outcome("c-1", "c-1"),
            outcome(&UUID.to_uppercase(), "corr"),
            outcome(&UUID.replace('-', ""), UUID),
            refused(UUID_3),
            refused("cmd"),
            CommandOutcome {
                actor_id: String::new(),
                reason: Some(String::new()),
                ..refused("x")
            },
        ];
        let mut recent = RecentCommands::default();
        for case in &cases {
            recent.push(case);
        }
        for case in &cases {
            assert_eq!(
                recent.find(&case.command_id, "a1", "t1").as_ref(),
                Some(case)
            );
        }
        let again = RecentCommands::from_packed(recent.packed()).unwrap();
        assert_eq!(again, recent);
    }

    #[test]
    fn uuid_ids_take_sixteen_bytes() {
        let mut recent = RecentCommands::default();
        recent.push(&outcome(UUID, UUID));
        // Length 1, flags 1, id 16, actor 1 + 3, type 1 + 8, version 2,
        // event count 1, time 6: about a quarter of the JSON it replaces.
        assert_eq!(recent.packed().len(), 40);
    }

    #[test]
    fn the_window_keeps_the_newest() {
        let mut recent = RecentCommands::default();
        for i in 0..REMEMBERED_COMMANDS + 3 {
            recent.push(&outcome(&format!("c{i}"), "x"));
        }
        assert_eq!(recent.len(), REMEMBERED_COMMANDS);
        assert!(recent.find("c2", "a1", "t1").is_none());
        assert!(recent.find("c3", "a1", "t1").is_some());
        assert!(recent.find("c34", "a1", "t1").is_some());
    }

    #[test]
    fn a_uuid_and_its_text_twin_are_not_confused() {
        let mut recent = RecentCommands::default();
        recent.push(&outcome(&UUID.to_uppercase(), "x"));
        assert!(recent.find(UUID, "a1", "t1").is_none());
        assert!(recent.find(&UUID.to_uppercase(), "a1", "t1").is_some());
    }

    #[test]
    fn malformed_packed_bytes_are_refused_not_trusted() {
        let mut recent = RecentCommands::default();
        recent.push(&refused("c1"));
        let packed = recent.packed();
        for cut in 1..packed.len() {
            assert!(
                RecentCommands::from_packed(&packed[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut huge_length = vec![0xff; 9];
        huge_length.push(0x01);
        assert!(RecentCommands::from_packed(&huge_length).is_err());
        let mut unknown_flag = packed.to_vec();
        unknown_flag[1] |= 0x80;
        assert!(RecentCommands::from_packed(&unknown_flag).is_err());
    }

    #[test]
    fn zigzag_round_trips_the_extremes() {
        for value in [0, 1, -1, i64::MAX, i64::MIN, 1_765_000_000_123] {
            assert_eq!(unzigzag(zigzag(value)), value);
        }
    }
}
