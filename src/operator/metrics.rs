//! The operator's Prometheus metrics (text exposition format) and its `/healthz`, `/readyz`
//! and `/metrics` endpoints on a small HTTP/1.1 server. Counts only; reads no cluster state.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Upper bounds (seconds) of the reconcile duration histogram.
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Default)]
pub struct Metrics {
    reconciles: AtomicU64,
    errors: AtomicU64,
    /// Counts per bucket of [`BUCKETS`], then the sum in microseconds.
    buckets: [AtomicU64; BUCKETS.len()],
    duration_micros: AtomicU64,
    phases: Mutex<BTreeMap<String, String>>,
    /// Whether this replica holds the lease and its controller runs.
    pub leading: AtomicBool,
}

impl Metrics {
    pub fn reconciled(&self, took: Duration, failed: bool) {
        self.reconciles.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let seconds = took.as_secs_f64();
        for (bound, count) in BUCKETS.iter().zip(&self.buckets) {
            if seconds <= *bound {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.duration_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Records the phase of one VirtualCluster (`None` once it is gone).
    pub fn set_phase(&self, key: &str, phase: Option<&str>) {
        let mut phases = self.phases.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match phase {
            Some(phase) => phases.insert(key.to_string(), phase.to_string()),
            None => phases.remove(key),
        };
    }

    pub fn reconcile_count(&self) -> u64 {
        self.reconciles.load(Ordering::Relaxed)
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let total = self.reconciles.load(Ordering::Relaxed);
        let mut out = String::new();
        out.push_str("# HELP vc_operator_reconciles_total Reconciles of VirtualCluster objects.\n# TYPE vc_operator_reconciles_total counter\n");
        out.push_str(&format!("vc_operator_reconciles_total {total}\n"));
        out.push_str("# HELP vc_operator_reconcile_errors_total Reconciles that failed and were retried.\n# TYPE vc_operator_reconcile_errors_total counter\n");
        out.push_str(&format!(
            "vc_operator_reconcile_errors_total {}\n",
            self.errors.load(Ordering::Relaxed)
        ));
        out.push_str("# HELP vc_operator_reconcile_duration_seconds Time one reconcile took.\n# TYPE vc_operator_reconcile_duration_seconds histogram\n");
        for (bound, count) in BUCKETS.iter().zip(&self.buckets) {
            out.push_str(&format!(
                "vc_operator_reconcile_duration_seconds_bucket{{le=\"{bound}\"}} {}\n",
                count.load(Ordering::Relaxed)
            ));
        }
        out.push_str(&format!(
            "vc_operator_reconcile_duration_seconds_bucket{{le=\"+Inf\"}} {total}\n"
        ));
        let sum = self.duration_micros.load(Ordering::Relaxed) as f64 / 1e6;
        out.push_str(&format!("vc_operator_reconcile_duration_seconds_sum {sum}\n"));
        out.push_str(&format!("vc_operator_reconcile_duration_seconds_count {total}\n"));
        out.push_str("# HELP vc_operator_clusters VirtualCluster objects by phase.\n# TYPE vc_operator_clusters gauge\n");
        let phases = self.phases.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut by_phase: BTreeMap<&str, usize> = BTreeMap::new();
        for phase in phases.values() {
            *by_phase.entry(phase.as_str()).or_default() += 1;
        }
        for (phase, count) in by_phase {
            out.push_str(&format!("vc_operator_clusters{{phase=\"{phase}\"}} {count}\n"));
        }
        out.push_str("# HELP vc_operator_leader Whether this replica holds the lease.\n# TYPE vc_operator_leader gauge\n");
        out.push_str(&format!(
            "vc_operator_leader {}\n",
            u8::from(self.leading.load(Ordering::Relaxed))
        ));
        out
    }
}

/// Serves `/healthz` (the process runs), `/readyz` (it leads and reconciles; a standby
/// replica answers 503) and `/metrics` until the listener is dropped.
pub async fn serve(listener: tokio::net::TcpListener, metrics: std::sync::Arc<Metrics>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else { continue };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buffer = [0u8; 2048];
            let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer)).await;
            let Ok(Ok(n)) = read else { return };
            let request = String::from_utf8_lossy(&buffer[..n]);
            let path = request.split_whitespace().nth(1).unwrap_or("/");
            let (code, body) = match path {
                "/healthz" => ("200 OK", "ok\n".to_string()),
                "/readyz" if metrics.leading.load(Ordering::Relaxed) => {
                    ("200 OK", "ok\n".to_string())
                }
                "/readyz" => (
                    "503 Service Unavailable",
                    "standby: another replica holds the lease\n".to_string(),
                ),
                "/metrics" => ("200 OK", metrics.render()),
                _ => ("404 Not Found", "not found\n".to_string()),
            };
            let response = format!(
                "HTTP/1.1 {code}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}
