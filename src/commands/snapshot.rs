//! `vc snapshot NAME [--to FILE|-]`: has the engine read every datastore key at one revision
//! and writes them as one `.vcsnap` file, through a temporary file that only becomes the final
//! name once the whole stream is in and verified.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::{OutputFormat, SnapshotArgs};
use crate::commands::Invocation;
use crate::error::CliError;
use crate::snapshot::format::{self, Trailer};
use crate::snapshot::stream;

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct SnapshotResult {
    name: String,
    namespace: String,
    file: String,
    entries: u64,
    payload_bytes: u64,
    sha256: String,
    kubernetes_version: String,
}

pub async fn run(invocation: &Invocation, args: SnapshotArgs) -> anyhow::Result<()> {
    crate::spec::validate_name(&args.name)?;
    let to_stdout = args.to.as_deref() == Some(Path::new("-"));
    let target = match &args.to {
        _ if to_stdout => None,
        Some(path) => Some(path.clone()),
        None => Some(default_file_name(&args.name)),
    };
    // Refuse an unwritable target before touching the host.
    let dir = target.as_ref().map(|t| parent_dir(t));
    if let Some(dir) = &dir
        && !dir.is_dir()
    {
        return Err(CliError::usage(format!(
            "cannot write the snapshot to {}: directory {} does not exist",
            target.as_ref().map(|t| t.display().to_string()).unwrap_or_default(),
            dir.display()
        ))
        .into());
    }

    let host = invocation.host().await?;
    let deadline = tokio::time::Instant::now() + args.timeout;
    let record = tokio::time::timeout_at(
        deadline,
        host.find(&args.name, invocation.global.namespace.as_deref()),
    )
    .await
    .map_err(|_| host.no_answer(args.timeout))??;
    let pod = crate::snapshot::running_syncer_pod(&host, &record).await?;
    let metadata = crate::snapshot::metadata_for(&record);

    let printer = &invocation.printer;
    let transfer = printer.transfer(&format!("snapshot of {:?}", record.name));
    let counter = transfer.counter();
    let client = host.client.clone();
    let namespace = record.namespace.clone();
    let work = async {
        if let Some(target) = &target {
            let dir = parent_dir(target);
            let temp = tempfile::Builder::new()
                .prefix(&format!(".{}.", file_name(target)))
                .suffix(".partial")
                .tempfile_in(&dir)
                .map_err(|e| anyhow::anyhow!("cannot create a file in {}: {e}", dir.display()))?;
            // The path guard stays in this future: when it is dropped (failure, Ctrl-C) the
            // partial file goes with it, whatever the blocking writer is doing.
            let (file, partial) = temp.into_parts();
            let (file, trailer) = stream::snapshot_from_pod(
                &client,
                &namespace,
                &pod,
                metadata.clone(),
                std::io::BufWriter::new(file),
                counter.clone(),
            )
            .await?;
            let file = file.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            drop(file);
            let reopened = std::fs::File::open(&partial)?;
            tokio::task::spawn_blocking(move || format::verify(std::io::BufReader::new(reopened)))
                .await??;
            partial.persist(target).map_err(|e| {
                anyhow::anyhow!("cannot write the snapshot to {}: {}", target.display(), e.error)
            })?;
            anyhow::Ok(trailer)
        } else {
            let out = StdoutWriter(printer.raw_stdout());
            let (_, trailer) = stream::snapshot_from_pod(
                &client,
                &namespace,
                &pod,
                metadata.clone(),
                out,
                counter.clone(),
            )
            .await?;
            anyhow::Ok(trailer)
        }
    };
    let ticker = async {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            transfer.tick();
        }
    };
    let result = tokio::select! {
        r = tokio::time::timeout_at(deadline, work) => r.map_err(|_| anyhow::Error::from(CliError::timeout(format!(
            "the snapshot of {:?} did not finish within {}; no file was written",
            record.name, crate::output::human_duration(args.timeout)
        ))))?,
        () = ticker => unreachable!("the ticker never ends"),
    };
    let trailer: Trailer = match result {
        Ok(t) => t,
        Err(e) => {
            transfer.abandon();
            return Err(e.context(format!(
                "snapshot of virtual cluster {:?} failed; no file was written and the cluster is unchanged",
                record.name
            )));
        }
    };
    transfer.finish(&format!("{} keys", trailer.entries));
    let file = target.as_ref().map_or_else(|| "-".to_string(), |t| t.display().to_string());
    let result = SnapshotResult {
        name: record.name.clone(),
        namespace: record.namespace.clone(),
        file: file.clone(),
        entries: trailer.entries,
        payload_bytes: trailer.payload_bytes,
        sha256: trailer.sha256.clone(),
        kubernetes_version: metadata.kubernetes_version.clone(),
    };
    match printer.format {
        OutputFormat::Json | OutputFormat::Yaml if !to_stdout => {
            printer.structured_value(&result)?
        }
        OutputFormat::Name if !to_stdout => printer.data(&file),
        _ => printer.info(&format!(
            "wrote {file}: {} keys of virtual cluster {:?}, SHA-256 {}",
            trailer.entries, record.name, trailer.sha256
        )),
    }
    Ok(())
}

/// `NAME-YYYYmmdd-HHMMSS.vcsnap` in the current directory (UTC).
fn default_file_name(name: &str) -> PathBuf {
    let stamp = jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S");
    PathBuf::from(format!("{name}-{stamp}.{}", format::EXTENSION))
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_else(|| "snapshot".into())
}

/// Stdout as a blocking writer for the streaming side; a closed pipe is an error there.
struct StdoutWriter(std::io::Stdout);

impl Write for StdoutWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.lock().flush()
    }
}
