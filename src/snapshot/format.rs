//! The `.vcsnap` file format: a zstd-compressed tar stream of `metadata.json`, then one entry
//! per datastore key, then `trailer.json` (entry count, payload size and SHA-256). Pure: it
//! reads and writes `std::io` streams handed to it and never opens a file, a socket or a clock.
//!
//! Entry layout (see docs/snapshots.md): every key-value entry is a tar file named
//! `kv/<index>` whose content is `u32 key length (big endian) | key | value`, so keys are kept
//! byte for byte whatever they contain. The SHA-256 covers those contents in order.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The one format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The name of the first entry.
pub const METADATA_ENTRY: &str = "metadata.json";
/// The name of the last entry.
pub const TRAILER_ENTRY: &str = "trailer.json";
/// What `metadata.json` says the file is, so a JSON file of another tool is told apart.
pub const FORMAT_KIND: &str = "vc-snapshot";
/// File name extension of snapshots.
pub const EXTENSION: &str = "vcsnap";
/// zstd level: fast enough to keep up with an exec stream, still a good ratio on etcd values.
const ZSTD_LEVEL: i32 = 3;
/// The largest key the format accepts (etcd's own limit is far smaller).
const MAX_KEY_LEN: usize = 64 * 1024;
/// The largest `metadata.json` / `trailer.json` accepted, so a foreign file cannot make the
/// reader allocate without bound.
const MAX_JSON_LEN: u64 = 4 * 1024 * 1024;
/// The largest single value accepted (kine and etcd refuse far smaller ones).
const MAX_VALUE_LEN: u64 = 512 * 1024 * 1024;

/// Everything known about a snapshot before its payload is read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    pub format: String,
    pub format_version: u32,
    /// Name of the source virtual cluster.
    pub cluster: String,
    /// Host namespace of the source.
    pub namespace: String,
    /// The recorded spec of the source (`vc.dev/spec`), as JSON; `null` for a cluster vc did
    /// not create.
    pub spec: serde_json::Value,
    /// Kubernetes minor version of the source, such as `1.36`.
    pub kubernetes_version: String,
    /// Engine release the source ran, such as `0.36.1`.
    pub engine_release: String,
    pub engine_image: String,
    pub control_plane_image: String,
    /// RFC 3339.
    pub created_at: String,
    /// What the payload's keys were read from: `kine` (SQLite behind kine) or `etcd`.
    pub datastore: String,
    /// How the keys were read, such as `engine-key-value`.
    pub source: String,
}

/// What `trailer.json` records, and what a reader verifies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Trailer {
    pub entries: u64,
    pub payload_bytes: u64,
    pub sha256: String,
}

/// Why a file is not a snapshot this build can restore. Every message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error(
        "not a vc snapshot ({0}); pass a file written by `vc snapshot` (a zstd-compressed tar starting with metadata.json)"
    )]
    Foreign(String),
    #[error(
        "snapshot format version {found} is not supported by this vc (it reads version {FORMAT_VERSION}); use the vc release that wrote it, or a newer one"
    )]
    UnsupportedVersion { found: u32 },
    #[error(
        "the snapshot is truncated ({0}); the copy or download stopped early: take the snapshot again or fetch the whole file"
    )]
    Truncated(String),
    #[error("the snapshot is corrupt: {0}; take the snapshot again or fetch an undamaged copy")]
    Corrupt(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Writes a snapshot as its pieces arrive: the metadata first, then key-value entries, then
/// [`SnapshotWriter::finish`] writes the trailer. Memory use is one entry.
pub struct SnapshotWriter<W: Write> {
    tar: tar::Builder<zstd::Encoder<'static, W>>,
    hasher: Sha256,
    entries: u64,
    payload_bytes: u64,
}

impl<W: Write> SnapshotWriter<W> {
    pub fn new(out: W, metadata: &Metadata) -> io::Result<Self> {
        let encoder = zstd::Encoder::new(out, ZSTD_LEVEL)?;
        let mut tar = tar::Builder::new(encoder);
        let json = serde_json::to_vec_pretty(metadata).map_err(io::Error::other)?;
        append(&mut tar, METADATA_ENTRY, &json)?;
        Ok(Self { tar, hasher: Sha256::new(), entries: 0, payload_bytes: 0 })
    }

    /// Appends one datastore key and its value.
    pub fn add(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("datastore key of {} bytes cannot be stored", key.len()),
            ));
        }
        let len = u32::try_from(key.len()).map_err(io::Error::other)?.to_be_bytes();
        let size = (4 + key.len() + value.len()) as u64;
        let mut header = tar::Header::new_ustar();
        header.set_path(format!("kv/{:010}", self.entries))?;
        header.set_size(size);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        let mut content = len.as_slice().chain(key).chain(value);
        self.tar.append(&header, &mut content)?;
        self.hasher.update(len);
        self.hasher.update(key);
        self.hasher.update(value);
        self.entries += 1;
        self.payload_bytes += size;
        Ok(())
    }

    /// Writes the trailer, ends the tar and the zstd frame, and returns the inner writer.
    pub fn finish(mut self) -> io::Result<(W, Trailer)> {
        let trailer = Trailer {
            entries: self.entries,
            payload_bytes: self.payload_bytes,
            sha256: hex(&self.hasher.finalize_reset()),
        };
        let json = serde_json::to_vec_pretty(&trailer).map_err(io::Error::other)?;
        append(&mut self.tar, TRAILER_ENTRY, &json)?;
        let encoder = self.tar.into_inner()?;
        let out = encoder.finish()?;
        Ok((out, trailer))
    }
}

fn append<W: Write>(tar: &mut tar::Builder<W>, name: &str, data: &[u8]) -> io::Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_path(name)?;
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    tar.append(&header, data)
}

/// Reads a whole snapshot, calling `on_metadata` once (before any entry; an error from it stops
/// the read) and `on_entry` for every key-value pair, then verifies entry count, size and
/// checksum against the trailer and that nothing follows it. Only one entry is held in memory.
///
/// Callers that must not act on unverified content (restore) read the file twice: once with
/// no-op callbacks to verify, then again to act.
pub fn read_snapshot<R: Read>(
    input: R,
    mut on_metadata: impl FnMut(&Metadata) -> Result<(), FormatError>,
    mut on_entry: impl FnMut(&[u8], &[u8]) -> Result<(), FormatError>,
) -> Result<(Metadata, Trailer), FormatError> {
    let consumed = std::rc::Rc::new(std::cell::Cell::new(0u64));
    let mut archive = open_archive(input, consumed.clone())?;
    let mut entries = archive.entries().map_err(tar_error)?;
    let metadata = first_entry_metadata(&mut entries)?;
    on_metadata(&metadata)?;

    let mut hasher = Sha256::new();
    let mut count: u64 = 0;
    let mut payload_bytes: u64 = 0;
    let mut buffer = Vec::new();
    let trailer_end;
    let trailer: Trailer = loop {
        let mut entry = match entries.next() {
            None => {
                return Err(FormatError::Truncated(format!(
                    "it ends after {count} entries without trailer.json"
                )));
            }
            Some(entry) => entry.map_err(tar_error)?,
        };
        let name = entry.path_bytes().into_owned();
        if name == TRAILER_ENTRY.as_bytes() {
            let size = entry.header().size().map_err(tar_error)?;
            trailer_end = entry.raw_file_position() + size.div_ceil(512) * 512;
            let json = read_json_entry(&mut entry, TRAILER_ENTRY)?;
            break serde_json::from_slice(&json)
                .map_err(|e| FormatError::Corrupt(format!("trailer.json: {e}")))?;
        }
        let expected = format!("kv/{count:010}");
        if name != expected.as_bytes() {
            return Err(FormatError::Corrupt(format!(
                "entry {count} is named {:?}, expected {expected}",
                String::from_utf8_lossy(&name)
            )));
        }
        let size = entry.header().size().map_err(tar_error)?;
        if size < 4 || size > MAX_VALUE_LEN + MAX_KEY_LEN as u64 + 4 {
            return Err(FormatError::Corrupt(format!(
                "entry {expected} has an impossible size {size}"
            )));
        }
        buffer.clear();
        // `size` is bounded above, so the cast cannot truncate on 64-bit hosts.
        buffer.reserve(usize::try_from(size).unwrap_or(usize::MAX));
        (&mut entry).take(size).read_to_end(&mut buffer).map_err(stream_error)?;
        if (buffer.len() as u64) < size {
            return Err(FormatError::Truncated(format!("inside entry {expected}")));
        }
        let key_len = u32::from_be_bytes([buffer[0], buffer[1], buffer[2], buffer[3]]) as usize;
        if key_len == 0 || key_len > MAX_KEY_LEN || 4 + key_len > buffer.len() {
            return Err(FormatError::Corrupt(format!("entry {expected} has a bad key length")));
        }
        hasher.update(&buffer);
        let (key, value) = buffer[4..].split_at(key_len);
        on_entry(key, value)?;
        count += 1;
        payload_bytes += size;
    };

    match entries.next() {
        None => {}
        Some(Ok(_)) => return Err(FormatError::Corrupt("entries follow trailer.json".into())),
        Some(Err(e)) => return Err(tar_error(e)),
    }
    // What the tar reader left unread must be zeros and decompress cleanly (else the zstd frame
    // was cut), and the two zero blocks that end a tar must be there.
    let mut rest = archive.into_inner();
    let mut block = [0u8; 8192];
    loop {
        let n = match rest.read(&mut block) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(stream_error(e)),
        };
        if block[..n].iter().any(|b| *b != 0) {
            return Err(FormatError::Corrupt("data follows the end of the archive".into()));
        }
    }
    if consumed.get() < trailer_end + 1024 {
        return Err(FormatError::Truncated("the end-of-archive marker is missing".into()));
    }

    if trailer.entries != count {
        return Err(FormatError::Corrupt(format!(
            "trailer.json counts {} entries, the file holds {count}",
            trailer.entries
        )));
    }
    if trailer.payload_bytes != payload_bytes {
        return Err(FormatError::Corrupt(format!(
            "trailer.json records {} payload bytes, the file holds {payload_bytes}",
            trailer.payload_bytes
        )));
    }
    let actual = hex(&hasher.finalize());
    if trailer.sha256 != actual {
        return Err(FormatError::Corrupt(format!(
            "payload SHA-256 is {actual}, trailer.json records {}",
            trailer.sha256
        )));
    }
    Ok((metadata, trailer))
}

/// Reads only the metadata at the head of a snapshot: refuses a foreign stream and another
/// format version, verifies nothing after it (see [`read_snapshot`]).
pub fn read_metadata<R: Read>(input: R) -> Result<Metadata, FormatError> {
    let mut archive = open_archive(input, std::rc::Rc::default())?;
    let mut entries = archive.entries().map_err(tar_error)?;
    first_entry_metadata(&mut entries)
}

type Archive<R> = tar::Archive<
    CountingReader<zstd::Decoder<'static, io::BufReader<io::Chain<io::Cursor<[u8; 4]>, R>>>>,
>;

/// Checks the zstd magic and opens the tar inside, counting decompressed bytes in `consumed`.
fn open_archive<R: Read>(
    mut input: R,
    consumed: std::rc::Rc<std::cell::Cell<u64>>,
) -> Result<Archive<R>, FormatError> {
    let mut magic = [0u8; 4];
    let got = read_full(&mut input, &mut magic)?;
    if got < magic.len() {
        return Err(if got == 0 {
            FormatError::Truncated("the file is empty".into())
        } else {
            FormatError::Foreign("too short to be a snapshot".into())
        });
    }
    if magic != [0x28, 0xb5, 0x2f, 0xfd] {
        return Err(FormatError::Foreign("it is not zstd-compressed".into()));
    }
    let decoder = zstd::Decoder::new(io::Cursor::new(magic).chain(input)).map_err(zstd_error)?;
    Ok(tar::Archive::new(CountingReader { inner: decoder, count: consumed }))
}

/// The first entry, which must be our `metadata.json` of the one format version read here.
fn first_entry_metadata<R: Read>(
    entries: &mut tar::Entries<'_, R>,
) -> Result<Metadata, FormatError> {
    let mut first = match entries.next() {
        None => return Err(FormatError::Truncated("no metadata.json".into())),
        Some(entry) => entry.map_err(tar_error)?,
    };
    let name = first.path_bytes().into_owned();
    if name != METADATA_ENTRY.as_bytes() {
        return Err(FormatError::Foreign(format!(
            "its first entry is {:?}, not metadata.json",
            String::from_utf8_lossy(&name)
        )));
    }
    let json = read_json_entry(&mut first, METADATA_ENTRY)?;
    let value: serde_json::Value = serde_json::from_slice(&json)
        .map_err(|e| FormatError::Foreign(format!("metadata.json is not JSON: {e}")))?;
    if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT_KIND) {
        return Err(FormatError::Foreign("metadata.json does not describe a vc snapshot".into()));
    }
    let version = value.get("formatVersion").and_then(serde_json::Value::as_u64);
    match version {
        Some(v) if v == u64::from(FORMAT_VERSION) => {}
        Some(v) => {
            return Err(FormatError::UnsupportedVersion {
                found: u32::try_from(v).unwrap_or(u32::MAX),
            });
        }
        None => return Err(FormatError::Corrupt("metadata.json has no formatVersion".into())),
    }
    serde_json::from_value(value).map_err(|e| FormatError::Corrupt(format!("metadata.json: {e}")))
}

/// Verifies a whole snapshot without acting on it.
pub fn verify<R: Read>(input: R) -> Result<(Metadata, Trailer), FormatError> {
    read_snapshot(input, |_| Ok(()), |_, _| Ok(()))
}

struct CountingReader<R> {
    inner: R,
    count: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

fn read_json_entry<R: Read>(entry: &mut tar::Entry<R>, name: &str) -> Result<Vec<u8>, FormatError> {
    let size = entry.header().size().map_err(tar_error)?;
    if size > MAX_JSON_LEN {
        return Err(FormatError::Corrupt(format!("{name} is larger than {MAX_JSON_LEN} bytes")));
    }
    let mut json = Vec::new();
    entry.take(size).read_to_end(&mut json).map_err(stream_error)?;
    if (json.len() as u64) < size {
        return Err(FormatError::Truncated(format!("inside {name}")));
    }
    Ok(json)
}

fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Errors from the decompressor or the tar layer: an unexpected end is truncation, anything
/// else in the data is corruption; real I/O errors stay I/O errors.
fn stream_error(e: io::Error) -> FormatError {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => FormatError::Truncated(e.to_string()),
        io::ErrorKind::InvalidData | io::ErrorKind::Other | io::ErrorKind::InvalidInput => {
            classify_message(&e.to_string())
        }
        _ => FormatError::Io(e),
    }
}

fn tar_error(e: io::Error) -> FormatError {
    stream_error(e)
}

fn zstd_error(e: io::Error) -> FormatError {
    FormatError::Corrupt(format!("zstd: {e}"))
}

fn classify_message(message: &str) -> FormatError {
    let lower = message.to_ascii_lowercase();
    if lower.contains("eof") || lower.contains("incomplete") || lower.contains("unexpected end") {
        FormatError::Truncated(message.to_owned())
    } else {
        FormatError::Corrupt(message.to_owned())
    }
}

/// Lower-case hex, as `sha256sum` prints it.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
#[path = "format_tests.rs"]
mod tests;
