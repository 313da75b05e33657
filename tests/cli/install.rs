//! install.sh into a temporary prefix and HOME, with the binary the tests already built (no
//! second build): vc runs from there, a second run changes nothing, --uninstall removes what it
//! installed and nothing else.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::VC;

struct Installed {
    code: Option<i32>,
    stderr: String,
}

fn install(home: &Path, args: &[&str]) -> Installed {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("install.sh");
    // No cargo on PATH: a run without --from-binary must say what it needs.
    let output = Command::new("sh")
        .arg(script)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", home)
        .env("SHELL", "/bin/bash")
        .output()
        .expect("run install.sh");
    Installed {
        code: output.status.code(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(base, &path, out);
            } else {
                out.push(path.strip_prefix(base).expect("under base").display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn install_rerun_and_uninstall() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let home = tmp.path().join("home");
    let prefix = tmp.path().join("prefix");
    std::fs::create_dir_all(prefix.join("bin")).expect("mkdir");
    std::fs::write(prefix.join("bin").join("other-tool"), "keep me").expect("write");
    let args = ["--prefix", prefix.to_str().expect("UTF-8"), "--from-binary", VC];

    let first = install(&home, &args);
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    let version =
        Command::new(prefix.join("bin").join("vc")).arg("--version").output().expect("run");
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("vc {}", env!("CARGO_PKG_VERSION"))
    );
    let completion = home.join(".local/share/bash-completion/completions/vc");
    let script = std::fs::read_to_string(&completion).expect("bash completion installed");
    let committed = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("completions/vc.bash"),
    )
    .expect("committed completion");
    assert_eq!(script, committed);
    assert!(prefix.join("share/man/man1/vc.1").is_file());
    assert!(prefix.join("share/man/man1/vc-create.1").is_file());
    assert!(first.stderr.contains("is not on PATH"), "{}", first.stderr);

    let before = (files(&prefix), files(&home));
    let again = install(&home, &args);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert_eq!((files(&prefix), files(&home)), before, "a second run changes nothing");

    let removed = install(&home, &["--prefix", prefix.to_str().expect("UTF-8"), "--uninstall"]);
    assert_eq!(removed.code, Some(0), "{}", removed.stderr);
    assert_eq!(files(&prefix), vec!["bin/other-tool".to_string()]);
    assert!(files(&home).is_empty(), "{:?}", files(&home));
    let twice = install(&home, &["--prefix", prefix.to_str().expect("UTF-8"), "--uninstall"]);
    assert_eq!(twice.code, Some(1));
    assert!(twice.stderr.contains("nothing to uninstall"), "{}", twice.stderr);
}

#[test]
fn install_without_cargo_names_what_is_needed() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let prefix = tmp.path().join("prefix");
    let run = install(&tmp.path().join("home"), &["--prefix", prefix.to_str().expect("UTF-8")]);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("needs cargo") && run.stderr.contains("--from-binary"),
        "{}",
        run.stderr
    );
    assert!(!prefix.exists(), "nothing installed");
    let help = install(&tmp.path().join("home"), &["--help"]);
    assert_eq!(help.code, Some(0));
    let unknown = install(&tmp.path().join("home"), &["--frobnicate"]);
    assert_eq!(unknown.code, Some(1));
    assert!(unknown.stderr.contains("unknown option --frobnicate"), "{}", unknown.stderr);
}
