//! The `fakekube` binary: serves the fake API server on a port, prints its URL, and can
//! write a kubeconfig, preload objects and make pods Ready instantly (for benchmarks).

use std::process::ExitCode;
use std::time::Duration;

use fakekube::FakeKube;

const USAGE: &str = "usage: fakekube [--port N] [--kubeconfig PATH] [--context NAME] [--ready-delay-ms N] [--instant] [--load FILE]... [--no-controllers]

Serves a fake Kubernetes API (v1.33) on http://127.0.0.1:PORT until interrupted.
  --port N            listen on N (default: a random free port)
  --kubeconfig PATH   write a kubeconfig for the server to PATH
  --context NAME      context, cluster and user name in that kubeconfig (default: fakekube)
  --ready-delay-ms N  delay before simulated pods become Ready (default 50)
  --instant           pods become Ready at once (same as --ready-delay-ms 0)
  --load FILE         preload objects from a JSON or YAML file (object, List, array or
                      multi-document stream); repeatable
  --no-controllers    do not simulate workloads, pods or the engine
The URL is printed on stdout as the first line.";

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let mut builder = FakeKube::builder();
    let mut kubeconfig = None;
    let mut context = "fakekube".to_string();
    let mut objects = Vec::new();
    while let Some(arg) = args.next() {
        let mut value =
            |name: &str| args.next().ok_or_else(|| format!("{name} needs a value\n{USAGE}"));
        match arg.as_str() {
            "--port" => {
                let v = value("--port")?;
                builder = builder.port(v.parse().map_err(|_| format!("invalid port {v:?}"))?);
            }
            "--kubeconfig" => kubeconfig = Some(value("--kubeconfig")?),
            "--context" => context = value("--context")?,
            "--ready-delay-ms" => {
                let v = value("--ready-delay-ms")?;
                let ms: u64 = v.parse().map_err(|_| format!("invalid delay {v:?}"))?;
                builder = builder.ready_delay(Duration::from_millis(ms));
            }
            "--instant" => builder = builder.ready_delay(Duration::ZERO),
            "--load" => {
                let path = value("--load")?;
                let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
                objects.extend(fakekube::parse_objects(&text).map_err(|e| format!("{path}: {e}"))?);
            }
            "--no-controllers" => builder = builder.controllers(false),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let count = objects.len();
    let fake = builder.objects(objects).try_start().map_err(|e| e.to_string())?;
    println!("{}", fake.url());
    if let Some(path) = kubeconfig {
        fake.write_kubeconfig(&path, &context).map_err(|e| format!("{path}: {e}"))?;
        eprintln!("kubeconfig written to {path} (context {context})");
    }
    if count > 0 {
        eprintln!("loaded {count} objects");
    }
    loop {
        std::thread::park();
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fakekube: {e}");
            ExitCode::FAILURE
        }
    }
}
