//! Tests of the archive format: round trip, damage of every kind, and bounded memory.

use super::*;

fn metadata() -> Metadata {
    Metadata {
        format: FORMAT_KIND.into(),
        format_version: FORMAT_VERSION,
        cluster: "dev".into(),
        namespace: "vc-dev".into(),
        spec: serde_json::json!({"kubernetesVersion": "1.35"}),
        kubernetes_version: "1.35".into(),
        engine_release: "0.36.1".into(),
        engine_image: "ghcr.io/loft-sh/vcluster-oss:0.36.1".into(),
        control_plane_image: "ghcr.io/loft-sh/kubernetes:v1.35.0".into(),
        created_at: "2026-01-02T03:04:05Z".into(),
        datastore: "kine".into(),
        source: "engine-key-value".into(),
    }
}

fn sample_entries() -> Vec<(Vec<u8>, Vec<u8>)> {
    vec![
        (b"/registry/configmaps/default/app".to_vec(), b"k8s\0protobuf-ish\xff".to_vec()),
        (format!("/registry/secrets/ns/{}", "x".repeat(300)).into_bytes(), vec![7; 5000]),
        (b"/registry/empty".to_vec(), Vec::new()),
        (b"/vcluster/mappings/\xc3\xa9\n odd".to_vec(), b"{}".to_vec()),
    ]
}

fn write(entries: &[(Vec<u8>, Vec<u8>)], meta: &Metadata) -> Vec<u8> {
    let mut writer = SnapshotWriter::new(Vec::new(), meta).unwrap();
    for (k, v) in entries {
        writer.add(k, v).unwrap();
    }
    writer.finish().unwrap().0
}

type Entries = Vec<(Vec<u8>, Vec<u8>)>;

fn read_all(bytes: &[u8]) -> Result<(Metadata, Trailer, Entries), FormatError> {
    let mut got = Vec::new();
    let (m, t) = read_snapshot(
        bytes,
        |_| Ok(()),
        |k, v| {
            got.push((k.to_vec(), v.to_vec()));
            Ok(())
        },
    )?;
    Ok((m, t, got))
}

fn decompress(bytes: &[u8]) -> Vec<u8> {
    zstd::decode_all(bytes).unwrap()
}

fn compress(tar: &[u8]) -> Vec<u8> {
    zstd::encode_all(tar, 3).unwrap()
}

/// Offsets in the uncompressed tar where each section starts: every header, and the end marker.
fn section_offsets(tar: &[u8]) -> Vec<u64> {
    let mut archive = tar::Archive::new(tar);
    let mut offsets = Vec::new();
    let mut end = 0;
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        offsets.push(entry.raw_header_position());
        end = entry.raw_file_position() + entry.header().size().unwrap().div_ceil(512) * 512;
    }
    offsets.push(end);
    offsets.push(end + 512);
    offsets
}

fn replace_once(haystack: &mut [u8], needle: &[u8], with: &[u8]) {
    assert_eq!(needle.len(), with.len());
    let at = haystack.windows(needle.len()).position(|w| w == needle).expect("needle present");
    haystack[at..at + needle.len()].copy_from_slice(with);
}

#[test]
fn round_trip_keeps_every_entry_byte_for_byte() {
    let entries = sample_entries();
    let bytes = write(&entries, &metadata());
    let (meta, trailer, got) = read_all(&bytes).unwrap();
    assert_eq!(meta, metadata());
    assert_eq!(got, entries);
    assert_eq!(trailer.entries, 4);
    let payload: usize = entries.iter().map(|(k, v)| 4 + k.len() + v.len()).sum();
    assert_eq!(trailer.payload_bytes, payload as u64);
    assert_eq!(trailer.sha256.len(), 64);
}

#[test]
fn metadata_comes_first_and_the_trailer_last() {
    let tar = decompress(&write(&sample_entries(), &metadata()));
    let mut archive = tar::Archive::new(tar.as_slice());
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| String::from_utf8(e.unwrap().path_bytes().into_owned()).unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "metadata.json",
            "kv/0000000000",
            "kv/0000000001",
            "kv/0000000002",
            "kv/0000000003",
            "trailer.json"
        ]
    );
}

#[test]
fn an_empty_datastore_round_trips() {
    let bytes = write(&[], &metadata());
    let (_, trailer, got) = read_all(&bytes).unwrap();
    assert!(got.is_empty());
    assert_eq!(trailer.entries, 0);
}

#[test]
fn a_changed_value_is_a_checksum_mismatch() {
    let mut tar = decompress(&write(&sample_entries(), &metadata()));
    replace_once(&mut tar, b"protobuf-ish", b"protobuf-isH");
    let err = read_all(&compress(&tar)).unwrap_err();
    assert!(matches!(&err, FormatError::Corrupt(m) if m.contains("SHA-256")), "{err}");
    assert!(err.to_string().contains("take the snapshot again"), "{err}");
}

#[test]
fn a_changed_trailer_checksum_is_refused() {
    let bytes = write(&sample_entries(), &metadata());
    let (_, trailer, _) = read_all(&bytes).unwrap();
    let mut tar = decompress(&bytes);
    let mut wrong = trailer.sha256.clone().into_bytes();
    wrong[0] = if wrong[0] == b'0' { b'1' } else { b'0' };
    replace_once(&mut tar, trailer.sha256.as_bytes(), &wrong);
    let err = read_all(&compress(&tar)).unwrap_err();
    assert!(matches!(&err, FormatError::Corrupt(m) if m.contains("SHA-256")), "{err}");
}

#[test]
fn a_wrong_entry_count_is_refused() {
    let mut tar = decompress(&write(&sample_entries(), &metadata()));
    replace_once(&mut tar, b"\"entries\": 4", b"\"entries\": 5");
    let err = read_all(&compress(&tar)).unwrap_err();
    assert!(matches!(&err, FormatError::Corrupt(m) if m.contains("counts 5 entries")), "{err}");
}

#[test]
fn truncation_at_every_section_boundary_is_refused_as_truncated() {
    let tar = decompress(&write(&sample_entries(), &metadata()));
    let offsets = section_offsets(&tar);
    // metadata, four entries, trailer, first and second end block.
    assert_eq!(offsets.len(), 8);
    for cut in offsets.iter().copied().filter(|c| *c < tar.len() as u64) {
        // A well-formed zstd frame around a cut tar: only the tar layer notices.
        let err = read_all(&compress(&tar[..cut as usize])).unwrap_err();
        assert!(matches!(err, FormatError::Truncated(_)), "cut at {cut}: {err}");
        // Cut inside the section as well.
        if cut > 0 {
            let err = read_all(&compress(&tar[..cut as usize - 100])).unwrap_err();
            assert!(
                matches!(err, FormatError::Truncated(_) | FormatError::Corrupt(_)),
                "cut at {}: {err}",
                cut - 100
            );
        }
    }
}

#[test]
fn a_cut_compressed_file_is_never_accepted() {
    let bytes = write(&sample_entries(), &metadata());
    for cut in (0..bytes.len()).step_by(7).chain([bytes.len() - 1]) {
        let err = read_all(&bytes[..cut]).unwrap_err();
        assert!(
            matches!(
                err,
                FormatError::Truncated(_) | FormatError::Corrupt(_) | FormatError::Foreign(_)
            ),
            "cut at {cut}: {err}"
        );
        if cut > 16 {
            assert!(matches!(err, FormatError::Truncated(_)), "cut at {cut}: {err}");
        }
    }
}

#[test]
fn a_newer_format_version_is_refused_by_name() {
    let mut meta = metadata();
    meta.format_version = FORMAT_VERSION + 1;
    let err = read_all(&write(&sample_entries(), &meta)).unwrap_err();
    assert!(
        matches!(err, FormatError::UnsupportedVersion { found } if found == FORMAT_VERSION + 1)
    );
    assert!(err.to_string().contains("format version 2 is not supported"), "{err}");
}

#[test]
fn the_head_alone_gives_the_metadata_and_is_checked_as_strictly() {
    let meta = metadata();
    // 4 MiB that do not compress, so the file is long and made of many zstd blocks.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let big: Vec<_> = (0..64)
        .map(|i| {
            let value: Vec<u8> = (0..64 * 1024)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            (format!("/k{i}").into_bytes(), value)
        })
        .collect();
    let long = write(&big, &meta);
    // The metadata is known before the rest of a stream arrives (or if it never does)...
    assert_eq!(read_metadata(&long[..long.len() / 2]).unwrap(), meta);
    // ...from a bounded prefix of it.
    let mut counted = CountingReader { inner: long.as_slice(), count: Default::default() };
    read_metadata(&mut counted).unwrap();
    assert!(counted.count.get() < 512 * 1024, "read {} of {}", counted.count.get(), long.len());

    let mut newer = metadata();
    newer.format_version = FORMAT_VERSION + 1;
    let err = read_metadata(write(&[], &newer).as_slice()).unwrap_err();
    assert!(matches!(err, FormatError::UnsupportedVersion { .. }), "{err}");
    let err = read_metadata(&b"apiVersion: v1\n"[..]).unwrap_err();
    assert!(matches!(err, FormatError::Foreign(_)), "{err}");
    let err = read_metadata(&b""[..]).unwrap_err();
    assert!(matches!(err, FormatError::Truncated(_)), "{err}");
}

#[test]
fn foreign_files_are_named_as_such() {
    let empty = read_all(b"").unwrap_err();
    assert!(matches!(empty, FormatError::Truncated(_)), "{empty}");

    let gzip = read_all(b"\x1f\x8b\x08\x00rest of a gzip file").unwrap_err();
    assert!(matches!(&gzip, FormatError::Foreign(m) if m.contains("not zstd")), "{gzip}");

    let mut plain = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_path("registry.json").unwrap();
    header.set_size(2);
    header.set_cksum();
    plain.append(&header, b"{}".as_slice()).unwrap();
    let other_tar = read_all(&compress(&plain.into_inner().unwrap())).unwrap_err();
    assert!(
        matches!(&other_tar, FormatError::Foreign(m) if m.contains("registry.json")),
        "{other_tar}"
    );

    let not_tar = read_all(&compress(&[1u8; 2000])).unwrap_err();
    assert!(matches!(not_tar, FormatError::Foreign(_) | FormatError::Corrupt(_)), "{not_tar}");
}

#[test]
fn data_after_the_end_of_the_archive_is_refused() {
    let mut tar = decompress(&write(&sample_entries(), &metadata()));
    tar.extend_from_slice(b"trailing garbage");
    let err = read_all(&compress(&tar)).unwrap_err();
    assert!(matches!(err, FormatError::Corrupt(_)), "{err}");
}

#[test]
fn a_callback_error_stops_the_read() {
    let bytes = write(&sample_entries(), &metadata());
    let mut seen = 0;
    let err = read_snapshot(
        bytes.as_slice(),
        |_| Ok(()),
        |_, _| {
            seen += 1;
            Err(FormatError::Corrupt("stop".into()))
        },
    )
    .unwrap_err();
    assert_eq!(seen, 1);
    assert!(matches!(err, FormatError::Corrupt(m) if m == "stop"));
}

/// Peak resident memory of this process (Linux), in bytes.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kb| kb * 1024)
}

/// Runs [`big_payload_in_this_process`] alone in a child process, so the peak memory it
/// measures is its own and not that of tests running beside it.
#[test]
fn a_big_payload_streams_with_bounded_memory() {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "snapshot::format::tests::big_payload_in_this_process",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "{stdout}");
    assert!(stderr.contains("peak RSS grew by"), "{stderr}");
}

/// A 128 MiB payload goes through writer and reader over a pipe; neither side holds it.
#[test]
#[ignore = "run by a_big_payload_streams_with_bounded_memory in a process of its own"]
fn big_payload_in_this_process() {
    const ENTRY: usize = 256 * 1024;
    const ENTRIES: usize = 512;
    let (reader, writer) = io::pipe().unwrap();
    let before = peak_rss();
    let producer = std::thread::spawn(move || {
        let mut snapshot = SnapshotWriter::new(writer, &metadata()).unwrap();
        let mut value = vec![0u8; ENTRY];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..ENTRIES {
            // Pseudo-random, so zstd cannot shrink the payload to nothing.
            for chunk in value.chunks_mut(8) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
            }
            snapshot.add(format!("/registry/blobs/{i}").as_bytes(), &value).unwrap();
        }
        snapshot.finish().unwrap().1
    });
    let mut count = 0usize;
    let mut bytes = 0usize;
    let (_, trailer) = read_snapshot(
        io::BufReader::new(reader),
        |_| Ok(()),
        |_, v| {
            count += 1;
            bytes += v.len();
            Ok(())
        },
    )
    .unwrap();
    let written = producer.join().unwrap();
    assert_eq!(trailer, written);
    assert_eq!(count, ENTRIES);
    assert_eq!(bytes, ENTRY * ENTRIES);
    if let (Some(before), Some(after)) = (before, peak_rss()) {
        let grown = after.saturating_sub(before);
        eprintln!("payload {} MiB, peak RSS grew by {} MiB", (ENTRY * ENTRIES) >> 20, grown >> 20);
        assert!(grown < 64 << 20, "peak RSS grew by {grown} bytes for a 128 MiB payload");
    }
}
