//! Port-forward figures through fakekube's port-forward endpoint to a loopback test server:
//! bulk upload and download (MB/s), small request round trips and new-connection latency, for
//! a direct TCP connection, kube-rs's `Portforwarder` behind a local listener, and vc's
//! `Forward`. Prints figures only; nothing is asserted about time.
//!
//! Run: `cargo bench --bench forward` (env `VC_BENCH_MIB`, default 100).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fakekube::portforward::{PortForwards, serve_standalone};
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use vc::forward::{Forward, PodTarget};

const NS: &str = "vc-bench";
const POD: &str = "bench-0";
const PORT: u16 = 8443;
const CHUNK: usize = 256 * 1024;

/// The target: first byte picks the test. `U` + u64 length: read that many bytes, answer one
/// byte. `D` + u64 length: send that many bytes. `E`: echo until EOF.
async fn test_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            tokio::spawn(serve_test(conn));
        }
    });
    addr
}

async fn serve_test(mut conn: TcpStream) -> std::io::Result<()> {
    conn.set_nodelay(true)?;
    let mode = conn.read_u8().await?;
    let mut buf = vec![0u8; CHUNK];
    match mode {
        b'U' => {
            let mut left = conn.read_u64().await?;
            while left > 0 {
                let n = conn.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                left -= n as u64;
            }
            conn.write_u8(1).await?;
        }
        b'D' => {
            let mut left = conn.read_u64().await?;
            while left > 0 {
                let n = (left as usize).min(CHUNK);
                conn.write_all(&buf[..n]).await?;
                left -= n as u64;
            }
        }
        _ => {
            let (mut r, mut w) = conn.split();
            tokio::io::copy(&mut r, &mut w).await?;
        }
    }
    Ok(())
}

async fn upload(port: u16, bytes: u64) -> f64 {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    conn.set_nodelay(true).expect("nodelay");
    let buf = vec![0x5Au8; CHUNK];
    let start = Instant::now();
    conn.write_u8(b'U').await.expect("write");
    conn.write_u64(bytes).await.expect("write");
    let mut left = bytes;
    while left > 0 {
        let n = (left as usize).min(CHUNK);
        conn.write_all(&buf[..n]).await.expect("write");
        left -= n as u64;
    }
    conn.read_u8().await.expect("ack");
    mb_per_s(bytes, start.elapsed())
}

async fn download(port: u16, bytes: u64) -> f64 {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    conn.set_nodelay(true).expect("nodelay");
    let mut buf = vec![0u8; CHUNK];
    let start = Instant::now();
    conn.write_u8(b'D').await.expect("write");
    conn.write_u64(bytes).await.expect("write");
    let mut left = bytes;
    while left > 0 {
        let n = conn.read(&mut buf).await.expect("read");
        assert!(n > 0, "download cut short");
        left -= n as u64;
    }
    mb_per_s(bytes, start.elapsed())
}

/// Round trips of a 64-byte request on one connection.
async fn request_latency(port: u16, rounds: usize) -> Vec<Duration> {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    conn.set_nodelay(true).expect("nodelay");
    conn.write_u8(b'E').await.expect("write");
    let req = [7u8; 64];
    let mut resp = [0u8; 64];
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        conn.write_all(&req).await.expect("write");
        conn.read_exact(&mut resp).await.expect("read");
        times.push(start.elapsed());
    }
    times
}

/// A new connection and its first 64-byte round trip.
async fn connect_latency(port: u16, rounds: usize) -> Vec<Duration> {
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        let mut conn = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
        conn.set_nodelay(true).expect("nodelay");
        conn.write_u8(b'E').await.expect("write");
        conn.write_all(&[1u8; 64]).await.expect("write");
        conn.read_exact(&mut [0u8; 64]).await.expect("read");
        times.push(start.elapsed());
    }
    times
}

fn mb_per_s(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / 1e6 / took.as_secs_f64()
}

fn percentile(times: &mut [Duration], p: f64) -> Duration {
    times.sort();
    let i = ((times.len() as f64 - 1.0) * p).round() as usize;
    times[i]
}

/// kube-rs's own transport behind a local listener: one `Portforwarder` per connection.
async fn kube_forward(api: Api<Pod>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut local, _)) = listener.accept().await {
            let api = api.clone();
            tokio::spawn(async move {
                let _ = local.set_nodelay(true);
                let Ok(mut pf) = api.portforward(POD, &[PORT]).await else { return };
                let Some(mut remote) = pf.take_stream(PORT) else { return };
                let _ = tokio::io::copy_bidirectional(&mut local, &mut remote).await;
                drop(remote);
                let _ = pf.join().await;
            });
        }
    });
    port
}

async fn run(label: &str, port: u16, bytes: u64) {
    // Warm up the paths (connection setup, allocator) before timing.
    let _ = upload(port, 1 << 20).await;
    let up = upload(port, bytes).await;
    let down = download(port, bytes).await;
    let mut req = request_latency(port, 2000).await;
    let mut conn = connect_latency(port, 200).await;
    println!(
        "{label:<28} upload {up:>8.1} MB/s   download {down:>8.1} MB/s   request p50 {:>7.1?} p99 {:>7.1?}   new connection p50 {:>7.1?}",
        percentile(&mut req, 0.5),
        percentile(&mut req, 0.99),
        percentile(&mut conn, 0.5),
    );
}

#[tokio::main]
async fn main() {
    let mib: u64 = std::env::var("VC_BENCH_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let bytes = mib * 1024 * 1024;
    let target = test_server().await;
    let pf = PortForwards::new();
    pf.set_target(NS, POD, PORT, target);
    let url = serve_standalone(pf).await.expect("fake");
    let client = Client::try_from(kube::Config::new(url.parse().expect("url"))).expect("client");

    println!("{mib} MiB each way, loopback, through fakekube's port-forward endpoint ({url})");
    run("direct TCP (no forward)", target.port(), bytes).await;
    let kube_port = kube_forward(Api::namespaced(client.clone(), NS)).await;
    let forward = Forward::start(client, PodTarget::new(NS, POD, PORT), 0).await.expect("forward");
    // Alternate the two transports so neither always runs on a fake holding more sessions.
    for _ in 0..2 {
        run("vc Forward", forward.local_port(), bytes).await;
        run("kube-rs Portforwarder", kube_port, bytes).await;
    }
}
