//! A Storage-container-endpoint-compatible writer into a local directory.
//!
//! IoT Hub writes a Storage endpoint's messages as blobs named by the endpoint's
//! `fileNameFormat`, one record per message, in Avro (the default), deflate-compressed Avro, or
//! JSON lines (`research/azure-routing.md` §3.2). Tools that read those blobs (Spark, Stream
//! Analytics, hand-written readers) should be able to read these files unchanged, so the layout
//! and the record ([`super::AVRO_SCHEMA`], [`super::storage_json_record`]) follow IoT Hub's.
//!
//! Files ("chunks") are kept per hub and partition. A chunk opens when its first record arrives
//! and is named from the clock's UTC time then ("the batch start"); it is closed, and the next
//! record opens a new one, once `batch_frequency` has elapsed or when the next records would push
//! it past `max_chunk_size_bytes`. A name that already exists on disk gets a numeric suffix
//! (`07-1.avro`), so nothing is ever overwritten, also across restarts. Unlike IoT Hub, no empty
//! file is written for an interval without messages.
//!
//! Every chunk is a complete, readable file after each [`Sink::write_batch`]: Avro files are a
//! header followed by blocks, and each batch is appended as whole blocks. A failed write is
//! truncated back to the last good length, so a retry does not leave a corrupt file behind.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use super::record::Record;
use super::time::{format_enqueued_time, utc_parts, Clock, SystemClock};
use super::view::CopyView;
use super::{Envelope, Sink, SinkError};

/// The tokens of a `fileNameFormat`; each must appear exactly once.
pub const FILE_NAME_TOKENS: [&str; 7] = [
    "{iothub}",
    "{partition}",
    "{YYYY}",
    "{MM}",
    "{DD}",
    "{HH}",
    "{mm}",
];

/// IoT Hub's default `fileNameFormat`.
pub const DEFAULT_FILE_NAME_FORMAT: &str = "{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}";

/// IoT Hub's default `batchFrequencyInSeconds` (300 s; the hub allows 60 to 720).
pub const DEFAULT_BATCH_FREQUENCY: Duration = Duration::from_secs(300);

/// IoT Hub's default `maxChunkSizeInBytes` (300 MB; the hub allows 10 MB to 500 MB).
pub const DEFAULT_MAX_CHUNK_SIZE_BYTES: u64 = 314_572_800;

/// How many `-N` suffixes to try before giving up on a name (a sign of something odd on disk).
const MAX_NAME_SUFFIX: u32 = 100_000;

/// The endpoint's `encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StorageEncoding {
    /// Avro object container files without compression (IoT Hub's default), `.avro`.
    #[default]
    Avro,
    /// Avro with the `deflate` codec, `.avro`.
    AvroDeflate,
    /// One JSON record per line, `.json`.
    Json,
}

impl StorageEncoding {
    /// The extension appended to file names, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            StorageEncoding::Avro | StorageEncoding::AvroDeflate => "avro",
            StorageEncoding::Json => "json",
        }
    }

    /// The spelling IoT Hub's ARM schema uses.
    pub fn as_str(self) -> &'static str {
        match self {
            StorageEncoding::Avro => "avro",
            StorageEncoding::AvroDeflate => "avrodeflate",
            StorageEncoding::Json => "JSON",
        }
    }
}

impl FromStr for StorageEncoding {
    type Err = String;

    /// Accepts IoT Hub's spellings in any case: `avro`, `avrodeflate`, `json`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "avro" => Ok(StorageEncoding::Avro),
            "avrodeflate" => Ok(StorageEncoding::AvroDeflate),
            "json" => Ok(StorageEncoding::Json),
            _ => Err(format!(
                "unknown storage encoding '{s}' (expected avro, avrodeflate or JSON)"
            )),
        }
    }
}

/// Settings of a [`StorageSink`], mirroring a Storage endpoint's ARM properties.
///
/// IoT Hub's ranges (60–720 s, 10–500 MB) are checked by the routing configuration's validation,
/// not here, so tests and local setups may use small values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    /// The local directory standing in for the container.
    pub root: PathBuf,
    /// The `{iothub}` value for envelopes whose `hub_name` is empty.
    pub hub_name: String,
    /// `encoding`.
    pub encoding: StorageEncoding,
    /// `fileNameFormat`; see [`validate_file_name_format`].
    pub file_name_format: String,
    /// `batchFrequencyInSeconds`: how long a file stays open for new records.
    pub batch_frequency: Duration,
    /// `maxChunkSizeInBytes`: no file grows past this, except a file holding one record that
    /// alone is bigger.
    pub max_chunk_size_bytes: u64,
}

impl StorageConfig {
    /// IoT Hub's defaults for a container at `root` of hub `hub_name`.
    pub fn new(root: impl Into<PathBuf>, hub_name: impl Into<String>) -> Self {
        StorageConfig {
            root: root.into(),
            hub_name: hub_name.into(),
            encoding: StorageEncoding::default(),
            file_name_format: DEFAULT_FILE_NAME_FORMAT.into(),
            batch_frequency: DEFAULT_BATCH_FREQUENCY,
            max_chunk_size_bytes: DEFAULT_MAX_CHUNK_SIZE_BYTES,
        }
    }
}

/// IoT Hub's rule for `fileNameFormat`: every token of [`FILE_NAME_TOKENS`] exactly once, in any
/// order, and no other `{…}` token (tokens are case-sensitive: `{MM}` is the month, `{mm}` the
/// minute). Any other text is literal, with no `..` path component (it would leave the root
/// directory). The error says what is wrong.
pub fn validate_file_name_format(format: &str) -> Result<(), String> {
    checked_format(format).map(|_| ())
}

/// [`parse_format`] and the rule that keeps files inside the root: no `..` path component
/// in the literal text. One function, so that `hubroute check --routes` (through
/// [`validate_file_name_format`]) refuses exactly what a [`StorageSink`] refuses.
fn checked_format(format: &str) -> Result<Vec<Segment>, String> {
    let segments = parse_format(format)?;
    for segment in &segments {
        if let Segment::Literal(text) = segment {
            if text.split(['/', '\\']).any(|c| c == "..") {
                return Err(format!(
                    "fileNameFormat '{format}' contains '..', which would leave the root directory"
                ));
            }
        }
    }
    Ok(segments)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    IotHub,
    Partition,
    Year,
    Month,
    Day,
    Hour,
    Minute,
}

const TOKENS: [(&str, Token); 7] = [
    ("{iothub}", Token::IotHub),
    ("{partition}", Token::Partition),
    ("{YYYY}", Token::Year),
    ("{MM}", Token::Month),
    ("{DD}", Token::Day),
    ("{HH}", Token::Hour),
    ("{mm}", Token::Minute),
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Token(Token),
}

/// Splits a format into literals and tokens, enforcing [`validate_file_name_format`]'s rule.
fn parse_format(format: &str) -> Result<Vec<Segment>, String> {
    let mut segments = Vec::new();
    let mut seen = [false; TOKENS.len()];
    let mut literal = String::new();
    let mut rest = format;
    while let Some(c) = rest.chars().next() {
        if c == '{' {
            let found = TOKENS
                .iter()
                .enumerate()
                .find(|(_, (text, _))| rest.starts_with(text));
            match found {
                Some((i, (text, token))) => {
                    if seen[i] {
                        return Err(format!(
                            "fileNameFormat '{format}' uses {text} more than once"
                        ));
                    }
                    seen[i] = true;
                    if !literal.is_empty() {
                        segments.push(Segment::Literal(std::mem::take(&mut literal)));
                    }
                    segments.push(Segment::Token(*token));
                    rest = &rest[text.len()..];
                    continue;
                }
                None => {
                    let end = rest.find('}').map_or(rest.len(), |e| e + 1);
                    return Err(format!(
                        "fileNameFormat '{format}' has an unknown token '{}' (the tokens are {})",
                        &rest[..end],
                        FILE_NAME_TOKENS.join(" ")
                    ));
                }
            }
        }
        if c == '}' {
            return Err(format!(
                "fileNameFormat '{format}' has a '}}' outside a token"
            ));
        }
        literal.push(c);
        rest = &rest[c.len_utf8()..];
    }
    if let Some(i) = seen.iter().position(|s| !s) {
        return Err(format!(
            "fileNameFormat '{format}' lacks {} (all of {} are required)",
            TOKENS[i].0,
            FILE_NAME_TOKENS.join(" ")
        ));
    }
    if !literal.is_empty() {
        segments.push(Segment::Literal(literal));
    }
    Ok(segments)
}

/// The hub name as a single safe path component: IoT Hub names are letters, digits and `-`;
/// anything else (a `/`, a `..`) becomes `_` so a name can never leave the root directory.
fn safe_component(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() || s.chars().all(|c| c == '.') {
        "_".repeat(s.len().max(1))
    } else {
        s
    }
}

/// One open output file.
struct Chunk {
    path: PathBuf,
    file: File,
    opened_at: SystemTime,
    bytes: u64,
    records: u64,
    #[cfg(feature = "avro")]
    marker: [u8; 16],
}

/// Records encoded for one hub and partition, back to back in one buffer (reused between
/// batches): Avro datums, or JSON lines with their newlines.
#[derive(Default)]
struct Encoded {
    bytes: Vec<u8>,
    /// Where each record ends in `bytes`.
    ends: Vec<usize>,
}

impl Encoded {
    fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    /// Marks the end of a record just written to `bytes`.
    fn end_record(&mut self) {
        self.ends.push(self.bytes.len());
    }

    /// Where record `i` starts (`i == len` is the end of the last).
    fn offset(&self, i: usize) -> usize {
        match i {
            0 => 0,
            i => self.ends[i - 1],
        }
    }

    /// The bytes of records `range`.
    fn slice(&self, range: &std::ops::Range<usize>) -> &[u8] {
        &self.bytes[self.offset(range.start)..self.offset(range.end)]
    }
}

/// The Avro schema and codec, prepared once per sink. Records are encoded by hubroute itself
/// ([`Record::write_avro`], `write_view_avro`) and framed into blocks here, as apache_avro's
/// writer frames them (count, byte length, data, sync marker): building an
/// `apache_avro::types::Value` per record cost more than everything else the sink did. The
/// file header is still apache_avro's.
#[cfg(feature = "avro")]
struct AvroState {
    schema: apache_avro::Schema,
    codec: apache_avro::Codec,
    header_len: u64,
}

#[cfg(feature = "avro")]
impl AvroState {
    fn new(deflate: bool) -> Result<Self, SinkError> {
        let schema = apache_avro::Schema::parse_str(super::AVRO_SCHEMA)
            .map_err(|e| SinkError::Fatal(format!("the Storage Avro schema is invalid: {e}")))?;
        let codec = if deflate {
            apache_avro::Codec::Deflate(apache_avro::DeflateSettings::default())
        } else {
            apache_avro::Codec::Null
        };
        let mut state = AvroState {
            schema,
            codec,
            header_len: 0,
        };
        // The header's length depends only on the schema and codec (the marker is 16 bytes).
        state.header_len = state.header([0; 16])?.len() as u64;
        Ok(state)
    }

    /// A new file's header, by apache_avro (magic, schema, codec, sync marker).
    fn header(&self, marker: [u8; 16]) -> Result<Vec<u8>, SinkError> {
        let fail = |e: apache_avro::Error| SinkError::Fatal(format!("Avro encoding failed: {e}"));
        apache_avro::Writer::builder()
            .schema(&self.schema)
            .writer(Vec::new())
            .codec(self.codec)
            .marker(marker)
            .has_header(false)
            .build()
            .into_inner()
            .map_err(fail)
    }

    /// Appends one block of `count` records whose datums are `data` to `out`.
    fn block(
        &self,
        out: &mut Vec<u8>,
        count: usize,
        data: &[u8],
        marker: [u8; 16],
    ) -> Result<(), SinkError> {
        use super::record::put_avro_len;
        match self.codec {
            apache_avro::Codec::Null => {
                put_avro_len(out, count);
                put_avro_len(out, data.len());
                out.extend_from_slice(data);
            }
            codec => {
                let mut packed = data.to_vec();
                codec
                    .compress(&mut packed)
                    .map_err(|e| SinkError::Fatal(format!("Avro block compression failed: {e}")))?;
                put_avro_len(out, count);
                put_avro_len(out, packed.len());
                out.extend_from_slice(&packed);
            }
        }
        out.extend_from_slice(&marker);
        Ok(())
    }

    /// An upper bound of the bytes a block of `count` records totalling `datum_len` takes.
    fn block_len(&self, count: u64, datum_len: u64) -> u64 {
        use super::record::varint_len;
        let body = match self.codec {
            // Deflate never expands by more than a stored block's 5-byte header per 64 KiB.
            apache_avro::Codec::Deflate(_) => datum_len + 5 * (datum_len / 65_535 + 1),
            _ => datum_len,
        };
        varint_len(count) + varint_len(body) + body + 16
    }
}

/// Sixteen unpredictable bytes for an Avro sync marker, from the standard library's randomly
/// keyed hasher (no random-number crate needed; the marker need not be cryptographic, only
/// unlikely to occur in the data).
#[cfg(feature = "avro")]
fn new_marker(path: &std::path::Path) -> [u8; 16] {
    use std::hash::{BuildHasher, Hash, Hasher};
    let mut out = [0u8; 16];
    for (i, half) in out.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        (i, path).hash(&mut h);
        SystemTime::now().hash(&mut h);
        half.copy_from_slice(&h.finish().to_le_bytes());
    }
    out
}

/// Writes envelopes as IoT Hub writes a Storage container endpoint's blobs; see the module docs.
pub struct StorageSink {
    config: StorageConfig,
    format: Vec<Segment>,
    clock: Box<dyn Clock>,
    chunks: HashMap<(String, u32), Chunk>,
    files: Vec<PathBuf>,
    #[cfg(feature = "avro")]
    avro: Option<AvroState>,
    /// One group's encoded records, reused between batches.
    encoded: Encoded,
    /// The bytes of one append (header, block framing), reused between batches.
    out: Vec<u8>,
}

impl StorageSink {
    /// A sink using the system clock. Fails ([`SinkError::Fatal`]) on an invalid
    /// `file_name_format`, or an Avro encoding when built without the `avro` feature.
    pub fn new(config: StorageConfig) -> Result<Self, SinkError> {
        Self::with_clock(config, Box::new(SystemClock))
    }

    /// A sink taking "now" from `clock` (file names and rolling by time).
    pub fn with_clock(config: StorageConfig, clock: Box<dyn Clock>) -> Result<Self, SinkError> {
        let format = checked_format(&config.file_name_format).map_err(SinkError::Fatal)?;
        #[cfg(feature = "avro")]
        let avro = match config.encoding {
            StorageEncoding::Avro => Some(AvroState::new(false)?),
            StorageEncoding::AvroDeflate => Some(AvroState::new(true)?),
            StorageEncoding::Json => None,
        };
        #[cfg(not(feature = "avro"))]
        if config.encoding != StorageEncoding::Json {
            return Err(SinkError::Fatal(format!(
                "storage encoding '{}' needs hubroute built with the `avro` feature; use JSON",
                config.encoding.as_str()
            )));
        }
        Ok(StorageSink {
            config,
            format,
            clock,
            chunks: HashMap::new(),
            files: Vec::new(),
            #[cfg(feature = "avro")]
            avro,
            encoded: Encoded::default(),
            out: Vec::new(),
        })
    }

    /// Every file this sink has created, in creation order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The path (below the root, without extension or suffix) for a chunk opened at `time`.
    fn relative_name(&self, hub: &str, partition: u32, time: SystemTime) -> PathBuf {
        let p = utc_parts(time);
        let mut name = String::new();
        for segment in &self.format {
            match segment {
                Segment::Literal(text) => name.push_str(text),
                Segment::Token(t) => name.push_str(&match t {
                    Token::IotHub => safe_component(hub),
                    Token::Partition => partition.to_string(),
                    Token::Year => format!("{:04}", p.year),
                    Token::Month => format!("{:02}", p.month),
                    Token::Day => format!("{:02}", p.day),
                    Token::Hour => format!("{:02}", p.hour),
                    Token::Minute => format!("{:02}", p.minute),
                }),
            }
        }
        // Empty and "." components (a leading or doubled '/') are dropped so the name stays
        // relative to the root; ".." was refused when the format was checked.
        name.split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect()
    }

    /// Creates a new file for the chunk, never overwriting an existing one.
    fn open_chunk(
        &mut self,
        hub: &str,
        partition: u32,
        now: SystemTime,
    ) -> Result<Chunk, SinkError> {
        let relative = self.relative_name(hub, partition, now);
        let base = self.config.root.join(&relative);
        if let Some(parent) = base.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                SinkError::from_io(&format!("cannot create {}", parent.display()), &e)
            })?;
        }
        let ext = self.config.encoding.extension();
        let stem = base.file_name().map(|s| s.to_string_lossy().into_owned());
        let stem = stem.unwrap_or_else(|| "_".into());
        for n in 0..MAX_NAME_SUFFIX {
            let file_name = if n == 0 {
                format!("{stem}.{ext}")
            } else {
                format!("{stem}-{n}.{ext}")
            };
            let path = base.with_file_name(file_name);
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => {
                    self.files.push(path.clone());
                    return Ok(Chunk {
                        #[cfg(feature = "avro")]
                        marker: new_marker(&path),
                        path,
                        file,
                        opened_at: now,
                        bytes: 0,
                        records: 0,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(SinkError::from_io(
                        &format!("cannot create {}", path.display()),
                        &e,
                    ))
                }
            }
        }
        Err(SinkError::Retryable(format!(
            "{}: {MAX_NAME_SUFFIX} files with this name already exist",
            base.display()
        )))
    }

    /// Whether records are encoded as Avro (else JSON lines). Only asked where the `avro`
    /// feature is on (without it every record is a JSON line).
    #[cfg(feature = "avro")]
    fn is_avro(&self) -> bool {
        self.avro.is_some()
    }

    /// Appends the record of `e` to `out`.
    fn encode_envelope(&self, e: &Envelope, out: &mut Encoded) {
        let record = Record::new(e, format_enqueued_time(e.enqueued_time));
        #[cfg(feature = "avro")]
        if self.is_avro() {
            record.write_avro(&mut out.bytes);
            out.end_record();
            return;
        }
        record.write_json(None, &mut out.bytes);
        out.bytes.push(b'\n');
        out.end_record();
    }

    /// Appends the record of a copy read in place to `out`, as [`Self::encode_envelope`]
    /// would of its envelope.
    fn encode_view(&self, v: &CopyView<'_>, out: &mut Encoded) {
        #[cfg(feature = "avro")]
        if self.is_avro() {
            super::record::write_view_avro(v, &mut out.bytes);
            out.end_record();
            return;
        }
        super::record::write_view_json(v, None, &mut out.bytes);
        out.bytes.push(b'\n');
        out.end_record();
    }

    /// Bytes a new file's header takes.
    fn header_len(&self) -> u64 {
        #[cfg(feature = "avro")]
        if let Some(a) = &self.avro {
            return a.header_len;
        }
        0
    }

    /// Upper bound of the bytes appending `count` records of `datum` bytes adds to a file.
    fn block_len(&self, count: u64, datum: u64) -> u64 {
        #[cfg(feature = "avro")]
        if let Some(a) = &self.avro {
            return a.block_len(count, datum);
        }
        let _ = count;
        datum
    }

    /// Puts the bytes appending `records` to `chunk` writes (header included for a new file)
    /// in `out`; JSON lines are written from `encoded` as they are (`false`).
    fn render(
        &self,
        chunk: &Chunk,
        encoded: &Encoded,
        records: &std::ops::Range<usize>,
        out: &mut Vec<u8>,
    ) -> Result<bool, SinkError> {
        out.clear();
        #[cfg(feature = "avro")]
        if let Some(a) = &self.avro {
            if chunk.bytes == 0 {
                out.extend_from_slice(&a.header(chunk.marker)?);
            }
            a.block(out, records.len(), encoded.slice(records), chunk.marker)?;
            return Ok(true);
        }
        let _ = (chunk, encoded, records);
        Ok(false)
    }

    /// Appends `records` of `encoded` to the chunk for `key`, opening it first when needed. On
    /// a failed write the file is cut back to its last good length (or removed when it was new
    /// and cannot be).
    fn append(
        &mut self,
        key: &(String, u32),
        encoded: &Encoded,
        records: std::ops::Range<usize>,
        now: SystemTime,
    ) -> Result<(), SinkError> {
        let mut chunk = match self.chunks.remove(key) {
            Some(c) => c,
            None => self.open_chunk(&key.0, key.1, now)?,
        };
        let mut out = std::mem::take(&mut self.out);
        let rendered = self.render(&chunk, encoded, &records, &mut out);
        let bytes = match &rendered {
            Ok(true) => &out[..],
            Ok(false) => encoded.slice(&records),
            Err(_) => &[][..],
        };
        let written = match rendered {
            Err(e) => Err(e),
            Ok(_) => chunk
                .file
                .write_all(bytes)
                .map(|()| bytes.len() as u64)
                .map_err(|e| {
                    SinkError::from_io(&format!("cannot write {}", chunk.path.display()), &e)
                }),
        };
        // A batch of very large records does not pin its memory for the sink's lifetime.
        if out.capacity() > 16 << 20 {
            out = Vec::new();
        }
        self.out = out;
        match written {
            Ok(n) => {
                chunk.bytes += n;
                chunk.records += records.len() as u64;
                self.chunks.insert(key.clone(), chunk);
                Ok(())
            }
            Err(err) => {
                if chunk.file.set_len(chunk.bytes).is_ok() && chunk.bytes > 0 {
                    self.chunks.insert(key.clone(), chunk);
                } else if chunk.bytes == 0 {
                    // A file with no complete header is not a valid Avro file; best effort.
                    let _ = std::fs::remove_file(&chunk.path);
                    self.files.retain(|p| p != &chunk.path);
                }
                Err(err)
            }
        }
    }

    fn expired(&self, chunk: &Chunk, now: SystemTime) -> bool {
        now.duration_since(chunk.opened_at)
            .is_ok_and(|d| d >= self.config.batch_frequency)
    }

    /// Writes one hub/partition's encoded records, rolling files by time and size.
    fn write_group(
        &mut self,
        key: &(String, u32),
        encoded: &Encoded,
        now: SystemTime,
    ) -> Result<(), SinkError> {
        if let Some(c) = self.chunks.get(key) {
            if self.expired(c, now) {
                self.chunks.remove(key);
            }
        }
        let n = encoded.ends.len();
        let max = self.config.max_chunk_size_bytes;
        let mut start = 0;
        while start < n {
            let (used, records) = match self.chunks.get(key) {
                Some(c) => (c.bytes, c.records),
                None => (self.header_len(), 0),
            };
            // Take the longest run that fits; a file always takes at least one record.
            let mut end = start;
            while end < n {
                let taken = (end - start) as u64;
                let datum = (encoded.offset(end + 1) - encoded.offset(start)) as u64;
                let fits = used.saturating_add(self.block_len(taken + 1, datum)) <= max;
                if !fits && records + taken > 0 {
                    break;
                }
                end += 1;
            }
            if end == start {
                self.chunks.remove(key); // full: the next file takes the rest
                continue;
            }
            self.append(key, encoded, start..end, now)?;
            start = end;
            if start < n {
                self.chunks.remove(key);
            }
        }
        Ok(())
    }

    /// The `{iothub}` of a record: its own hub name, else the configured one.
    fn hub_of<'s>(&'s self, hub_name: &'s str) -> &'s str {
        if hub_name.is_empty() {
            &self.config.hub_name
        } else {
            hub_name
        }
    }

    /// Writes a batch by hub and partition (each group in order, groups in order of first
    /// appearance), encoding each record with `encode`.
    fn write_grouped<T>(
        &mut self,
        batch: &[T],
        key_of: impl Fn(&T) -> (&str, u32),
        encode: impl Fn(&Self, &T, &mut Encoded),
    ) -> Result<(), SinkError> {
        let now = self.clock.now();
        let mut keys: Vec<(String, u32)> = Vec::new();
        for item in batch {
            let (hub, partition) = key_of(item);
            let hub = self.hub_of(hub);
            if !keys.iter().any(|(h, p)| h == hub && *p == partition) {
                keys.push((hub.to_string(), partition));
            }
        }
        let mut encoded = std::mem::take(&mut self.encoded);
        let mut result = Ok(());
        for key in &keys {
            encoded.clear();
            for item in batch {
                let (hub, partition) = key_of(item);
                if partition == key.1 && self.hub_of(hub) == key.0 {
                    encode(self, item, &mut encoded);
                }
            }
            result = self.write_group(key, &encoded, now);
            if result.is_err() {
                break;
            }
        }
        if encoded.bytes.capacity() > 16 << 20 {
            encoded = Encoded::default();
        }
        self.encoded = encoded;
        result
    }
}

impl Sink for StorageSink {
    fn describe(&self) -> String {
        format!(
            "storage:{} ({})",
            self.config.root.display(),
            self.config.encoding.as_str()
        )
    }

    fn write_batch(&mut self, batch: &[Envelope]) -> Result<(), SinkError> {
        self.write_grouped(
            batch,
            |e| (e.hub_name.as_str(), e.partition),
            Self::encode_envelope,
        )
    }

    /// Encodes each record straight from the stored bytes into one reused buffer: no
    /// `Message` or Avro value per copy.
    fn write_views(&mut self, batch: &[CopyView<'_>]) -> Result<(), SinkError> {
        self.write_grouped(batch, |v| (v.hub_name, 0), Self::encode_view)
    }

    /// Closes files whose batch interval has elapsed and syncs the others to disk.
    fn flush(&mut self) -> Result<(), SinkError> {
        let now = self.clock.now();
        let frequency = self.config.batch_frequency;
        self.chunks.retain(|_, c| {
            now.duration_since(c.opened_at)
                .map_or(true, |d| d < frequency)
        });
        for chunk in self.chunks.values() {
            chunk.file.sync_data().map_err(|e| {
                SinkError::from_io(&format!("cannot sync {}", chunk.path.display()), &e)
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_rules() {
        assert!(validate_file_name_format(DEFAULT_FILE_NAME_FORMAT).is_ok());
        assert!(
            validate_file_name_format("{mm}-{HH}-{DD}-{MM}-{YYYY}_{partition}@{iothub}.x").is_ok()
        );
        let e =
            validate_file_name_format("{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}").unwrap_err();
        assert!(e.contains("lacks {mm}"), "{e}");
        let e = validate_file_name_format("{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}/{mm}")
            .unwrap_err();
        assert!(e.contains("more than once"), "{e}");
        let e = validate_file_name_format("{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}/{ss}")
            .unwrap_err();
        assert!(e.contains("unknown token '{ss}'"), "{e}");
        let e = validate_file_name_format("{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}{")
            .unwrap_err();
        assert!(e.contains("unknown token '{'"), "{e}");
        let e = validate_file_name_format("}{iothub}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}")
            .unwrap_err();
        assert!(e.contains("'}'"), "{e}");
        assert!(
            validate_file_name_format("{IOTHUB}/{partition}/{YYYY}/{MM}/{DD}/{HH}/{mm}").is_err()
        );
        assert!(validate_file_name_format("").is_err());
        assert!(validate_file_name_format("é{iothub}{partition}{YYYY}{MM}{DD}{HH}{mm}ü").is_ok());
    }

    #[test]
    fn names_stay_under_the_root() {
        assert_eq!(safe_component("my-hub"), "my-hub");
        assert_eq!(safe_component("../x"), ".._x");
        assert_eq!(safe_component(".."), "__");
        assert_eq!(safe_component(""), "_");
        assert_eq!(safe_component("a/b\\c"), "a_b_c");
        let mut config = StorageConfig::new("/r", "h");
        config.file_name_format = "/{iothub}//./{partition}{YYYY}{MM}{DD}{HH}{mm}".into();
        config.encoding = StorageEncoding::Json;
        let sink = StorageSink::new(config.clone()).unwrap();
        let name = sink.relative_name("..", 3, std::time::UNIX_EPOCH);
        assert_eq!(name, PathBuf::from("__/3197001010000"));
        config.file_name_format = "../{iothub}{partition}{YYYY}{MM}{DD}{HH}{mm}".into();
        assert!(StorageSink::new(config).is_err());
    }

    #[test]
    fn encodings_parse() {
        assert_eq!("AvroDeflate".parse(), Ok(StorageEncoding::AvroDeflate));
        assert_eq!("json".parse(), Ok(StorageEncoding::Json));
        assert_eq!("AVRO".parse(), Ok(StorageEncoding::Avro));
        assert!("csv".parse::<StorageEncoding>().is_err());
    }
}
