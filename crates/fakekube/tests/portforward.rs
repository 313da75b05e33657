//! The port-forward endpoint against kube-rs's own `Api::<Pod>::portforward`: the subprotocol
//! and framing kube negotiates, the bridge to a loopback target, errors and dropped streams.

use std::net::SocketAddr;
use std::time::Duration;

use fakekube::portforward::{PortForwards, serve_standalone};
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = conn.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

async fn pods(pf: &PortForwards) -> Api<Pod> {
    let url = serve_standalone(pf.clone()).await.unwrap();
    let client = Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    Api::namespaced(client, "ns")
}

#[tokio::test]
async fn kube_portforwarder_talks_to_the_bridge() {
    let pf = PortForwards::new();
    pf.set_target("ns", "web-0", 8443, echo_server().await);
    pf.set_target("ns", "web-0", 9000, echo_server().await);
    let api = pods(&pf).await;

    let mut forwarder = api.portforward("web-0", &[8443, 9000]).await.unwrap();
    for port in [8443, 9000] {
        let mut stream = forwarder.take_stream(port).unwrap();
        let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
        stream.write_all(&payload).await.unwrap();
        let mut back = vec![0u8; payload.len()];
        stream.read_exact(&mut back).await.unwrap();
        assert_eq!(back, payload);
    }
    assert_eq!(pf.active(), 1);
    assert_eq!(pf.opened(), 1);
    forwarder.abort();
}

#[tokio::test]
async fn missing_pod_is_404_and_refused_port_reports_on_the_error_channel() {
    let pf = PortForwards::new();
    let api = pods(&pf).await;
    match api.portforward("nope-0", &[8443]).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 404);
            assert_eq!(status.reason, "NotFound");
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a missing pod must not upgrade"),
    }

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    pf.set_target("ns", "web-0", 8443, closed);
    let mut forwarder = api.portforward("web-0", &[8443]).await.unwrap();
    let error = forwarder.take_error(8443).unwrap();
    let message = tokio::time::timeout(Duration::from_secs(5), error).await.unwrap();
    assert!(message.unwrap_or_default().contains("connection refused"));
}

#[tokio::test]
async fn drop_all_breaks_open_streams_and_targets_stay() {
    let pf = PortForwards::new();
    pf.set_target("ns", "web-0", 8443, echo_server().await);
    let api = pods(&pf).await;

    let mut forwarder = api.portforward("web-0", &[8443]).await.unwrap();
    let mut stream = forwarder.take_stream(8443).unwrap();
    stream.write_all(b"a").await.unwrap();
    let mut one = [0u8; 1];
    stream.read_exact(&mut one).await.unwrap();

    pf.drop_pod("ns", "other-0");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(pf.active(), 1, "breaking another pod's streams must leave this one");

    pf.drop_all();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the stream did not end");
    for _ in 0..50 {
        if pf.active() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(pf.active(), 0);

    let mut forwarder = api.portforward("web-0", &[8443]).await.unwrap();
    let mut stream = forwarder.take_stream(8443).unwrap();
    stream.write_all(b"again").await.unwrap();
    let mut back = [0u8; 5];
    stream.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"again");
}
