//! The Printer: the only writer to stdout and stderr. Data (tables, JSON, YAML, names) goes to
//! stdout; progress, hints and warnings go to stderr. Built once from the global flags.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use comfy_table::{ContentArrangement, Table, presets};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::cli::OutputFormat;

/// Phases of `vc create`, in order; also the keys of `timings` in JSON output. Each is named
/// after the step it ends with: the objects applied, the control-plane pod bound to a node,
/// its init container done, the virtual API server answering, the cluster ready with working
/// admin credentials, its exposed address answering (`--expose` only), the manifests applied
/// inside (`--apply` only), the kubeconfig context connected.
pub const PHASES: [&str; 8] = [
    "applying",
    "scheduled",
    "initialized",
    "apiserver",
    "ready",
    "exposed",
    "provisioning",
    "connected",
];

/// Phases only some runs pass through (`exposed` needs `--expose`, `provisioning` needs
/// manifests): never counted as passed or filled in as skipped when a later phase starts
/// without them.
const OPTIONAL_PHASES: [&str; 2] = ["exposed", "provisioning"];

/// Owns stdout, stderr, colour and the progress display.
#[derive(Clone, Debug)]
pub struct Printer {
    pub format: OutputFormat,
    pub quiet: bool,
    pub verbose: u8,
    pub color: bool,
    pub stderr_tty: bool,
    pub stdin_tty: bool,
    /// Colour on stdout: it is a terminal, and neither --no-color nor NO_COLOR is set.
    pub stdout_color: bool,
}

impl Printer {
    pub fn new(format: OutputFormat, quiet: bool, verbose: u8, no_color: bool) -> Self {
        let stderr_tty = std::io::stderr().is_terminal();
        let no_color_env = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Self {
            format,
            quiet,
            verbose,
            color: stderr_tty && !no_color && !no_color_env,
            stderr_tty,
            stdin_tty: std::io::stdin().is_terminal(),
            stdout_color: std::io::stdout().is_terminal() && !no_color && !no_color_env,
        }
    }

    /// Whether the user wants machine-readable data on stdout.
    pub fn structured(&self) -> bool {
        matches!(self.format, OutputFormat::Json | OutputFormat::Yaml | OutputFormat::Name)
    }

    /// Writes data to stdout. A closed pipe (`vc list | head`) ends the process quietly.
    pub fn data(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let result = out.write_all(text.as_bytes()).and_then(|()| {
            if text.ends_with('\n') || text.is_empty() { Ok(()) } else { out.write_all(b"\n") }
        });
        if let Err(e) = result.and_then(|()| out.flush())
            && e.kind() == std::io::ErrorKind::BrokenPipe
        {
            std::process::exit(0);
        }
    }

    /// `text` in the ANSI colour `code` (such as "32", green) when stdout takes colour.
    pub fn paint_stdout(&self, text: &str, code: &str) -> String {
        if self.stdout_color { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() }
    }

    /// Writes a value as JSON or YAML, as the output format asks (JSON for table and name).
    pub fn structured_value<T: Serialize>(&self, value: &T) -> anyhow::Result<()> {
        match self.format {
            OutputFormat::Yaml => self.data(&to_yaml(value)?),
            _ => self.data(&format!("{}\n", serde_json::to_string_pretty(value)?)),
        }
        Ok(())
    }

    /// Writes a table to stdout.
    pub fn table(&self, headers: &[&str], rows: Vec<Vec<String>>) {
        let mut table = Table::new();
        table
            .load_style(presets::NOTHING)
            .set_content_arrangement(ContentArrangement::Disabled)
            .set_header(headers.iter().copied());
        for row in rows {
            table.add_row(row);
        }
        let text = table.to_string();
        let trimmed: Vec<&str> =
            text.lines().map(|l| l.trim_end().trim_start_matches(' ')).collect();
        self.data(&format!("{}\n", trimmed.join("\n")));
    }

    /// A line for the user on stderr (hidden with -q).
    pub fn info(&self, text: &str) {
        if !self.quiet {
            eprintln!("{text}");
        }
    }

    /// A line for the user on stderr, only with -v.
    pub fn detail(&self, text: &str) {
        if self.verbose > 0 && !self.quiet {
            eprintln!("{text}");
        }
    }

    /// A warning on stderr (shown even with -q).
    pub fn warn(&self, text: &str) {
        if self.color {
            eprintln!("\x1b[33mwarning:\x1b[0m {text}");
        } else {
            eprintln!("warning: {text}");
        }
    }

    /// Starts a phase display: a spinner on a terminal, timestamped lines otherwise.
    pub fn progress(&self, title: &str) -> Progress {
        let bar = if self.stderr_tty && !self.quiet {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(100));
            Some(bar)
        } else {
            None
        };
        let progress = Progress {
            bar,
            plain: !self.stderr_tty && !self.quiet,
            started: Instant::now(),
            phase_started: Instant::now(),
            current: None,
            done: Vec::new(),
        };
        progress.line(title);
        progress
    }
}

impl Printer {
    /// A byte-transfer display: bytes and rate on a terminal, one summary line otherwise.
    /// The counter is shared, so the streaming side can advance it from any thread.
    pub fn transfer(&self, title: &str) -> Transfer {
        let bar = (self.stderr_tty && !self.quiet).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} {bytes} ({bytes_per_sec}) {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_message(title.to_owned());
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        Transfer {
            bar,
            plain: !self.stderr_tty && !self.quiet,
            title: title.to_owned(),
            bytes: std::sync::Arc::default(),
            started: Instant::now(),
        }
    }

    /// Raw bytes to stdout (`vc snapshot --to -`), for a caller that streams data.
    pub fn raw_stdout(&self) -> std::io::Stdout {
        std::io::stdout()
    }
}

/// See [`Printer::transfer`].
pub struct Transfer {
    bar: Option<ProgressBar>,
    plain: bool,
    title: String,
    bytes: std::sync::Arc<std::sync::atomic::AtomicU64>,
    started: Instant,
}

impl Transfer {
    /// The counter the streaming side adds to.
    pub fn counter(&self) -> std::sync::Arc<std::sync::atomic::AtomicU64> {
        self.bytes.clone()
    }

    /// Redraws from the counter; call it now and then.
    pub fn tick(&self) {
        if let Some(bar) = &self.bar {
            bar.set_position(self.bytes.load(std::sync::atomic::Ordering::Relaxed));
        }
    }

    /// Ends the display with a summary line: bytes, seconds and MB/s.
    pub fn finish(self, what: &str) {
        let bytes = self.bytes.load(std::sync::atomic::Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs_f64();
        let line = format!(
            "{} {what}: {} in {secs:.1}s ({:.1} MB/s)",
            self.title,
            human_bytes(bytes),
            bytes as f64 / 1e6 / secs.max(1e-3)
        );
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
            eprintln!("{line}");
        } else if self.plain {
            eprintln!("{} {line}", jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ"));
        }
    }

    /// Ends the display without a summary (on failure).
    pub fn abandon(self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// 1536 -> "1.5 KiB".
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

/// Serialises a value as YAML.
pub fn to_yaml<T: Serialize>(value: &T) -> anyhow::Result<String> {
    Ok(serde_saphyr::to_string(value)?)
}

/// Phase display of one long operation, with per-phase timings.
pub struct Progress {
    bar: Option<ProgressBar>,
    plain: bool,
    started: Instant,
    phase_started: Instant,
    current: Option<&'static str>,
    done: Vec<(&'static str, Duration)>,
}

impl Progress {
    fn line(&self, text: &str) {
        if let Some(bar) = &self.bar {
            bar.println(text);
        } else if self.plain {
            eprintln!("{} {text}", jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ"));
        }
    }

    /// Enters `phase`, closing the current one. Phases already passed are ignored. Phases of
    /// [`PHASES`] between the current one and `phase` that were never entered ended at the
    /// same moment as the current one (two steps seen in one update), so they take 0 s.
    pub fn phase(&mut self, phase: &'static str) {
        if self.current == Some(phase) || self.done.iter().any(|(p, _)| *p == phase) {
            return;
        }
        let position = |p: &str| PHASES.iter().position(|known| *known == p);
        let skipped: Vec<&'static str> = match (self.current.and_then(position), position(phase)) {
            (Some(from), Some(to)) if to > from + 1 => PHASES[from + 1..to]
                .iter()
                .copied()
                .filter(|p| !OPTIONAL_PHASES.contains(p))
                .collect(),
            _ => Vec::new(),
        };
        self.finish_current();
        for passed in skipped {
            self.current = Some(passed);
            self.phase_started = Instant::now();
            self.finish_current();
        }
        self.current = Some(phase);
        self.phase_started = Instant::now();
        if let Some(bar) = &self.bar {
            bar.set_message(phase);
            bar.reset_elapsed();
        }
    }

    fn finish_current(&mut self) {
        if let Some(phase) = self.current.take() {
            let took = self.phase_started.elapsed();
            self.done.push((phase, took));
            self.line(&format!("{phase:<10} {:>6.1}s", took.as_secs_f64()));
        }
    }

    /// Shows a note under the current phase (for example a scheduling message).
    pub fn note(&self, text: &str) {
        self.line(&format!("  {text}"));
    }

    /// Ends the display; returns the timings of every finished phase.
    pub fn finish(mut self) -> Vec<(&'static str, Duration)> {
        self.finish_current();
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        std::mem::take(&mut self.done)
    }

    /// Ends the display without closing the current phase (on failure).
    pub fn abandon(mut self) -> Vec<(&'static str, Duration)> {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        std::mem::take(&mut self.done)
    }

    /// Time since the display started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

/// A duration as the user typed it: 90s, 5m, 2h.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 && s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s >= 60 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// A short human age: 45s, 12m, 3h, 2d.
pub fn human_age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        7200..172_800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}
