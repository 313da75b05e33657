//! Records the git commit the binary is built from, for `vc version`. A build outside a git
//! checkout (a source tarball) takes `VC_GIT_COMMIT` if set, else reports "unknown".

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

fn main() {
    println!("cargo:rerun-if-env-changed=VC_GIT_COMMIT");
    let commit = std::env::var("VC_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_string());
    // Rebuild when HEAD moves: HEAD itself (a branch switch) and the ref it points at (a commit).
    // A path that does not exist would rebuild every time, so a packed ref watches packed-refs.
    let paths = [Some("HEAD".to_string()), git(&["symbolic-ref", "-q", "HEAD"])];
    for path in paths.into_iter().flatten() {
        let file = git(&["rev-parse", "--git-path", &path])
            .filter(|f| std::path::Path::new(f).exists())
            .or_else(|| git(&["rev-parse", "--git-path", "packed-refs"]))
            .filter(|f| std::path::Path::new(f).exists());
        if let Some(file) = file {
            println!("cargo:rerun-if-changed={file}");
        }
    }
    println!("cargo:rustc-env=VC_GIT_COMMIT={commit}");
}
