//! Helpers shared by the integration tests: a minimal raw HTTP/1.1 client (so tests see the
//! exact status code and body) and kube-rs client construction from a fake's kubeconfig.

#![allow(dead_code)] // each test binary uses a different subset of these helpers

use std::io::{Read, Write};
use std::net::TcpStream;

use fakekube::FakeKube;
use serde_json::Value;

/// A raw response: status code, content type and body bytes (chunked encoding removed).
pub struct Raw {
    pub code: u16,
    pub content_type: String,
    pub body: Vec<u8>,
    /// Every response header, in order (names lower-cased).
    pub headers: Vec<(String, String)>,
}

impl Raw {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body))
        })
    }

    /// The values of every header called `name`.
    pub fn header_values(&self, name: &str) -> Vec<String> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().filter(|(k, _)| *k == name).map(|(_, v)| v.clone()).collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Newline-delimited JSON (watch streams).
    pub fn lines(&self) -> Vec<Value> {
        self.text()
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(pos) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = std::str::from_utf8(&data[..pos]).unwrap_or("0");
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("0").trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = pos + 2;
        out.extend_from_slice(&data[start..(start + size).min(data.len())]);
        data = &data[(start + size + 2).min(data.len())..];
    }
    out
}

/// Sends one request and reads the whole response (the server closes after it).
pub fn http(fk: &FakeKube, method: &str, path: &str, content_type: &str, body: &str) -> Raw {
    request(fk, method, path, "application/json", content_type, body)
}

/// A GET with this `Accept` header (`application/json;as=Table;...` for Tables).
pub fn get_accept(fk: &FakeKube, path: &str, accept: &str) -> Raw {
    request(fk, "GET", path, accept, "", "")
}

fn request(
    fk: &FakeKube,
    method: &str,
    path: &str,
    accept: &str,
    content_type: &str,
    body: &str,
) -> Raw {
    let mut stream = TcpStream::connect(fk.addr()).expect("connect to fakekube");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAccept: {accept}\r\nUser-Agent: rawtest/1.0\r\n",
        fk.addr()
    );
    if !body.is_empty() {
        req.push_str(&format!(
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).unwrap();
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).unwrap();
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n").expect("response head");
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let code: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let header = |name: &str| {
        head.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
            .unwrap_or_default()
    };
    let raw_body = &buf[head_end + 4..];
    let body = if header("transfer-encoding").contains("chunked") {
        dechunk(raw_body)
    } else {
        raw_body.to_vec()
    };
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect();
    Raw { code, content_type: header("content-type"), body, headers }
}

pub fn get(fk: &FakeKube, path: &str) -> Raw {
    http(fk, "GET", path, "", "")
}

pub fn post(fk: &FakeKube, path: &str, body: &Value) -> Raw {
    http(fk, "POST", path, "application/json", &body.to_string())
}

/// A kube-rs client for the fake, built from its kubeconfig.
pub async fn client(fk: &FakeKube) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&fk.kubeconfig_yaml("fake")).unwrap();
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    kube::Client::try_from(config).unwrap()
}
