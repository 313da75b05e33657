//! The test builder: runs the real `vc` binary with its own HOME, KUBECONFIG and state
//! directory, and records exit code, stdout and stderr together for snapshots.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub const VC: &str = env!("CARGO_BIN_EXE_vc");

/// A fake host (pods ready after 20 ms) and a sandbox whose kubeconfig points at it, context
/// `kind-host`.
pub fn fake_host() -> (fakekube::FakeKube, Sandbox) {
    let fake =
        fakekube::FakeKube::builder().ready_delay(std::time::Duration::from_millis(20)).start();
    let sandbox = Sandbox::new();
    std::fs::create_dir_all(sandbox.kubeconfig().parent().expect("a parent directory"))
        .expect("create the kubeconfig directory");
    fake.write_kubeconfig(sandbox.kubeconfig(), "kind-host").expect("write the kubeconfig");
    (fake, sandbox)
}

/// A private home for one test: HOME, the kubeconfig path and the state directory.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        Self { dir: tempfile::tempdir().expect("temp dir") }
    }
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }
    pub fn kubeconfig(&self) -> PathBuf {
        self.home().join(".kube").join("config")
    }
    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }
}

/// One `vc` invocation.
pub struct Vc<'a> {
    sandbox: &'a Sandbox,
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Option<Vec<u8>>,
}

/// What one run produced.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl<'a> Vc<'a> {
    pub fn new(sandbox: &'a Sandbox) -> Self {
        Self { sandbox, args: Vec::new(), env: Vec::new(), stdin: None }
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_string()));
        self
    }

    /// Bytes fed to vc's stdin (then closed).
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<Path>) -> Self {
        self.env.push((key.to_string(), value.as_ref().display().to_string()));
        self
    }

    /// The command with the sandbox's environment: HOME, KUBECONFIG, XDG_STATE_HOME and
    /// NO_COLOR, nothing inherited but PATH; stdout and stderr piped.
    fn command(&self) -> Command {
        let home = self.sandbox.home();
        std::fs::create_dir_all(&home).expect("home dir");
        let mut command = Command::new(VC);
        command
            .args(&self.args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("KUBECONFIG", self.sandbox.kubeconfig())
            .env("XDG_STATE_HOME", self.sandbox.state())
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            command.env(k, v);
        }
        command
    }

    /// Starts vc in the background with no stdin; [`Run::of`] collects it.
    pub fn spawn(self) -> std::process::Child {
        self.command().stdin(Stdio::null()).spawn().expect("start vc")
    }

    pub fn run(self) -> Run {
        let mut command = self.command();
        command.stdin(Stdio::piped());
        let mut child = command.spawn().expect("start vc");
        // Fed from a thread, so a large input cannot block while vc's output fills its pipes.
        let feeder = child.stdin.take().map(|mut stdin| {
            let bytes = self.stdin.unwrap_or_default();
            std::thread::spawn(move || {
                use std::io::Write;
                let _ = stdin.write_all(&bytes);
            })
        });
        let run = Run::of(child);
        if let Some(feeder) = feeder {
            let _ = feeder.join();
        }
        run
    }
}

impl Run {
    /// Waits for a started vc and collects what it printed.
    pub fn of(child: std::process::Child) -> Run {
        let output = child.wait_with_output().expect("wait for vc");
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Exit code, stdout and stderr in one text, with timestamps and temp paths filtered.
    pub fn transcript(&self, sandbox: &Sandbox) -> String {
        // Tables go to stdout: their ages depend on how long the test took.
        let text = format!(
            "exit: {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code,
            mask_ages(&self.stdout),
            self.stderr
        );
        filter(&text, sandbox)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!("stdout is not JSON ({e}):\n{}\n{}", self.stdout, self.stderr)
        })
    }

    #[track_caller]
    pub fn code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(expected),
            "unexpected exit code\n--- stdout\n{}--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Replaces what changes between runs: temp paths, ports, timestamps, durations.
/// Runs `vc create dev EXTRA` for each case, checks each is a usage error (exit 2) of one line
/// with nothing on stdout, and returns the refusals as `## CASE` sections.
pub fn create_refusals(sandbox: &Sandbox, cases: Vec<(&str, Vec<&str>)>) -> String {
    let mut transcript = String::new();
    for (what, extra) in cases {
        let mut args = vec!["create", "dev"];
        args.extend(extra);
        let run = Vc::new(sandbox).args(&args).run();
        assert_eq!(run.code, Some(2), "{what}: {run:?}");
        assert!(run.stdout.is_empty(), "{what}: nothing on stdout");
        assert_eq!(run.stderr.lines().count(), 1, "{what}: one line: {}", run.stderr);
        transcript.push_str(&format!("## {what}\n{}", run.stderr));
    }
    transcript
}

pub fn filter(text: &str, sandbox: &Sandbox) -> String {
    let mut out = text.replace(&sandbox.dir.path().display().to_string(), "[TMP]");
    out = replace_pattern(&out, "127.0.0.1:", |rest| {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        (digits, "[PORT]".to_string())
    });
    replace_timestamps(&out)
}

/// Replaces whole-word ages ("0s", "12m", "3h", "1h30m", "2d") as tables print them.
fn mask_ages(text: &str) -> String {
    let is_age = |word: &str| {
        let mut digits = 0;
        let mut units = 0;
        for c in word.chars() {
            if c.is_ascii_digit() {
                digits += 1;
            } else if matches!(c, 's' | 'm' | 'h' | 'd') && digits > 0 {
                digits = 0;
                units += 1;
            } else {
                return false;
            }
        }
        units > 0 && digits == 0
    };
    let mut out = String::new();
    let mut word = String::new();
    for c in text.chars().chain(std::iter::once('\0')) {
        if c.is_whitespace() || c == '\0' || c == ',' || c == ';' || c == ')' {
            out.push_str(if is_age(&word) { "[AGE]" } else { &word });
            word.clear();
            if c != '\0' {
                out.push(c);
            }
        } else {
            word.push(c);
        }
    }
    out
}

fn replace_pattern(text: &str, marker: &str, f: impl Fn(&str) -> (usize, String)) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find(marker) {
        out.push_str(&rest[..i + marker.len()]);
        rest = &rest[i + marker.len()..];
        let (skip, with) = f(rest);
        if skip > 0 {
            out.push_str(&with);
            rest = &rest[skip..];
        }
    }
    out.push_str(rest);
    out
}

/// Replaces RFC 3339 timestamps (2026-01-02T03:04:05Z, with optional fraction) and
/// "12.3s" durations.
fn replace_timestamps(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        if let Some(len) = timestamp_len(&text[i..]) {
            out.push_str("[TIME]");
            i += len;
            continue;
        }
        let c = text[i..].chars().next().unwrap_or_default();
        out.push(c);
        i += c.len_utf8();
    }
    // Durations such as "0.1s" vary run to run.
    let mut cleaned = String::new();
    for line in out.split_inclusive('\n') {
        cleaned.push_str(&mask_durations(line));
    }
    cleaned
}

fn timestamp_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let shape = "dddd-dd-ddTdd:dd:dd";
    if b.len() < shape.len() {
        return None;
    }
    for (i, c) in shape.bytes().enumerate() {
        let ok = if c == b'd' { b[i].is_ascii_digit() } else { b[i] == c };
        if !ok {
            return None;
        }
    }
    let mut len = shape.len();
    if b.get(len) == Some(&b'.') {
        len += 1;
        while b.get(len).is_some_and(u8::is_ascii_digit) {
            len += 1;
        }
    }
    if b.get(len) == Some(&b'Z') {
        len += 1;
    } else if matches!(b.get(len), Some(b'+' | b'-')) && b.len() >= len + 6 {
        len += 6;
    }
    Some(len)
}

fn mask_durations(line: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = line.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let start = i;
        let prev_ok = start == 0 || !chars[start - 1].is_alphanumeric();
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
        if i > start && prev_ok && i + 2 < chars.len() + 1 && chars.get(i) == Some(&'.') {
            let mut j = i + 1;
            while j < chars.len() && chars[j].is_ascii_digit() {
                j += 1;
            }
            if j > i + 1
                && chars.get(j) == Some(&'s')
                && chars.get(j + 1).is_none_or(|c| !c.is_alphanumeric())
            {
                out.push_str("[DURATION]");
                i = j + 1;
                continue;
            }
        }
        if i > start {
            out.extend(&chars[start..i]);
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}
