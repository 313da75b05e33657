//! Helm charts installed inside a new virtual cluster (`vc create --chart`, spec `charts`):
//! rendered by vc from a local directory, a packaged chart or an HTTP chart repository, the
//! objects landing in the virtual API server's stand-in; a chart vc cannot render is refused
//! before the host hears of the cluster.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use sha2::Digest;

use crate::connect::Env;
use crate::provision::prepare;
use crate::tls::VirtualApi;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/charts/web")
}

/// The fixture chart packaged as `helm package` lays it out: everything under `web/`.
fn packaged() -> Vec<u8> {
    let mut archive = Vec::new();
    let gz = flate2::write::GzEncoder::new(&mut archive, flate2::Compression::fast());
    let mut tar = tar::Builder::new(gz);
    tar.append_dir_all("web", fixture()).expect("pack the fixture chart");
    tar.into_inner().expect("tar").finish().expect("gzip");
    archive
}

/// Serves fixed bodies by path over HTTP on a loopback port, until the test process ends.
fn serve(files: Vec<(&'static str, Vec<u8>)>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let n = stream.read(&mut request).unwrap_or(0);
            let head = String::from_utf8_lossy(&request[..n]).to_string();
            let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
            let found = files.iter().find(|(p, _)| *p == path);
            let (status, body) = match found {
                Some((_, body)) => ("200 OK", body.clone()),
                None => ("404 Not Found", b"not found".to_vec()),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(&body);
        }
    });
    format!("http://{address}")
}

#[test]
fn create_installs_a_local_chart_inside_once_ready() {
    let env = Env::new();
    let api = VirtualApi::start("inside-charted");
    prepare(&env, "charted", &api);
    let values = env.sandbox.dir.path().join("web-values.yaml");
    std::fs::write(
        &values,
        "image:\n  repository: busybox\n  tag: \"1.36\"\nlivenessProbe: null\nsettings:\n  greeting: hi\n",
    )
    .unwrap();
    let fixture = fixture();
    let created = env.vc(&[
        "create",
        "charted",
        "--chart",
        fixture.to_str().unwrap(),
        "--chart-values",
        values.to_str().unwrap(),
        "-o",
        "json",
    ]);
    created.code(0);
    let result = created.json();
    assert!(result["timings"]["provisioning"].is_number(), "{result}");
    // CRD, pre-install hook, ServiceAccount, ConfigMap, Service, Deployment.
    assert!(created.stderr.contains("applied 6 objects inside"), "{}", created.stderr);

    let inside = &api.inner;
    assert!(inside.get("customresourcedefinitions", "", "gadgets.web.example.test").is_some());
    let deployment = inside.get("deployments", "default", "web").expect("the chart's Deployment");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "busybox:1.36");
    assert!(container.get("livenessProbe").is_none(), "{container}");
    assert_eq!(deployment["metadata"]["labels"]["app.kubernetes.io/managed-by"], "Helm");
    let settings = inside.get("configmaps", "default", "web-settings").expect("the settings");
    assert_eq!(settings["data"]["greeting"], "hi");
    assert_eq!(settings["data"]["mode"], "demo");
    assert!(inside.get("configmaps", "default", "web-setup").is_some(), "the pre-install hook");
    assert!(inside.get("pods", "default", "web-test-connection").is_none(), "no test hook");
    assert!(env.fake.get("deployments", "vc-charted", "web").is_none(), "nothing on the host");

    let described = env.vc(&["describe", "charted", "-o", "json"]).json();
    assert_eq!(described["spec"]["charts"][0]["path"], fixture.display().to_string());
    env.vc(&["disconnect", "charted"]).code(0);
}

#[test]
fn a_chart_from_an_http_repository_is_verified_and_installed_in_its_namespace() {
    let env = Env::new();
    let api = VirtualApi::start("inside-repo");
    prepare(&env, "repo", &api);
    let archive = packaged();
    let digest: String =
        sha2::Sha256::digest(&archive).iter().map(|b| format!("{b:02x}")).collect();
    let index = format!(
        "apiVersion: v1\nentries:\n  web:\n  - name: web\n    version: 0.3.1\n    digest: {digest}\n    urls: [charts/web-0.3.1.tgz]\n  - name: web\n    version: 0.2.0\n    urls: [charts/missing.tgz]\n  - name: web\n    version: 0.4.0-rc.1\n    urls: [charts/missing.tgz]\n"
    );
    let bad_index = index.replace(&digest, &"ab".repeat(32));
    let base = serve(vec![
        ("/index.yaml", index.into_bytes()),
        ("/charts/web-0.3.1.tgz", archive),
        ("/bad/index.yaml", bad_index.into_bytes()),
        ("/bad/charts/web-0.3.1.tgz", packaged()),
    ]);
    let spec = env.sandbox.dir.path().join("values.yaml");
    let extra = env.sandbox.dir.path().join("extra.yaml");
    std::fs::write(&extra, "replicaCount: 2\nsettings:\n  mode: ci\n").unwrap();
    // No version: the newest release (0.3.1; the pre-release is not picked).
    std::fs::write(
        &spec,
        format!(
            "charts:\n- name: web\n  repo: {base}\n  releaseName: shop\n  namespace: store\n  valuesFiles: [extra.yaml]\n  values:\n    settings:\n      greeting: hey\n"
        ),
    )
    .unwrap();
    let created = env.vc(&["create", "repo", "-f", spec.to_str().unwrap(), "--no-connect"]);
    created.code(0);
    let inside = &api.inner;
    assert!(inside.get("namespaces", "", "store").is_some(), "the release namespace is created");
    let deployment =
        inside.get("deployments", "store", "shop-web").expect("in the release namespace");
    assert_eq!(deployment["spec"]["replicas"], 2, "the values file");
    let settings = inside.get("configmaps", "store", "shop-web-settings").expect("settings");
    assert_eq!(settings["data"]["mode"], "ci");
    assert_eq!(settings["data"]["greeting"], "hey", "values over the values files");

    // An archive that does not match the index's digest is refused before any host contact.
    std::fs::write(&spec, format!("charts:\n- name: web\n  repo: {base}/bad\n  version: 0.3.1\n"))
        .unwrap();
    env.fake.clear_requests();
    let refused = env.vc(&["create", "tampered", "-f", spec.to_str().unwrap()]);
    refused.code(2);
    assert!(refused.stderr.contains("does not match the digest"), "{}", refused.stderr);
    let missing = env.vc(&[
        "create",
        "tampered",
        "-f",
        spec.to_str().unwrap().replace("values", "none").as_str(),
    ]);
    missing.code(2);
    std::fs::write(&spec, format!("charts:\n- name: web\n  repo: {base}\n  version: 9.9.9\n"))
        .unwrap();
    let no_version = env.vc(&["create", "tampered", "-f", spec.to_str().unwrap()]);
    no_version.code(2);
    assert!(
        no_version.stderr.contains("has no version 9.9.9 of web (it has 0.3.1, 0.2.0, 0.4.0-rc.1)"),
        "{}",
        no_version.stderr
    );
    assert!(env.fake.requests().is_empty(), "no request: {:?}", env.fake.requests());
}

#[test]
fn a_chart_vc_cannot_render_is_refused_before_the_host_hears_of_the_cluster() {
    let env = Env::new();
    let chart = env.sandbox.dir.path().join("secrets");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(chart.join("Chart.yaml"), "apiVersion: v2\nname: secrets\nversion: 1.0.0\n")
        .unwrap();
    std::fs::write(
        chart.join("templates/secret.yaml"),
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  password: {{ randAlphaNum 16 | quote }}\n",
    )
    .unwrap();
    env.fake.clear_requests();
    let run = env.vc(&["create", "early", "--chart", chart.to_str().unwrap()]);
    run.code(2);
    let error = run.stderr.trim();
    assert!(
        error.contains("secrets/templates/secret.yaml:6: function \"randAlphaNum\" is not supported by vc's chart renderer"),
        "{error}"
    );
    assert_eq!(error.lines().count(), 1, "{error}");

    // A dependency that is not vendored, a missing chart, and --no-wait are refused too.
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: secrets\nversion: 1.0.0\ndependencies:\n- name: redis\n  version: 18.x\n  repository: https://charts.example.test\n",
    )
    .unwrap();
    let run = env.vc(&["create", "early", "--chart", chart.to_str().unwrap()]);
    run.code(2);
    assert!(run.stderr.contains("depends on chart \"redis\""), "{}", run.stderr);
    assert!(run.stderr.contains("helm dependency build"), "{}", run.stderr);
    let run = env.vc(&["create", "early", "--chart", "/nonexistent/chart"]);
    run.code(2);
    assert!(run.stderr.contains("cannot read chart /nonexistent/chart"), "{}", run.stderr);
    let fixture = fixture();
    let run = env.vc(&["create", "early", "--chart", fixture.to_str().unwrap(), "--no-wait"]);
    run.code(2);
    let run = env.vc(&[
        "create",
        "early",
        "--chart",
        fixture.to_str().unwrap(),
        "--chart",
        fixture.to_str().unwrap(),
        "--chart-values",
        "x.yaml",
    ]);
    run.code(2);
    assert!(run.stderr.contains("--chart-values applies to one --chart"), "{}", run.stderr);
    let spec = env.sandbox.dir.path().join("values.yaml");
    std::fs::write(&spec, "charts:\n- repo: https://charts.example.test\n").unwrap();
    let run = env.vc(&["create", "early", "-f", spec.to_str().unwrap()]);
    run.code(2);
    assert!(
        run.stderr.contains("charts: entry 1: a chart from a repository needs its name"),
        "{}",
        run.stderr
    );
    assert!(env.fake.requests().is_empty(), "no request: {:?}", env.fake.requests());
}

#[test]
fn dry_run_renders_the_chart_too() {
    let env = Env::new();
    let chart = env.sandbox.dir.path().join("broken");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(chart.join("Chart.yaml"), "apiVersion: v2\nname: broken\nversion: 1.0.0\n")
        .unwrap();
    std::fs::write(chart.join("templates/cm.yaml"), "{{ .Values.a.b }}\n").unwrap();
    let run = env.vc(&["create", "dry", "--chart", chart.to_str().unwrap(), "--dry-run"]);
    run.code(2);
    assert!(
        run.stderr.contains("broken/templates/cm.yaml:1: nil pointer evaluating interface {}.b"),
        "{}",
        run.stderr
    );
    let ok = env.vc(&["create", "dry", "--chart", fixture().to_str().unwrap(), "--dry-run"]);
    ok.code(0);
}

/// A registry that serves one chart as an OCI artifact, to a client holding the anonymous
/// token its challenge leads to.
fn serve_registry(archive: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    let digest: String =
        sha2::Sha256::digest(&archive).iter().map(|b| format!("{b:02x}")).collect();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json", "digest": "sha256:00", "size": 2},
        "layers": [{"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
                    "digest": format!("sha256:{digest}"), "size": archive.len()}],
    })
    .to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 8192];
            let n = stream.read(&mut request).unwrap_or(0);
            let head = String::from_utf8_lossy(&request[..n]).to_lowercase();
            let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
            let authorized = head.contains("authorization: bearer anonymous-pull");
            let (status, extra, body) = if path.starts_with("/token?") {
                let scoped = path.contains("scope=repository%3acharts%2fweb%3apull");
                if scoped {
                    ("200 OK", String::new(), br#"{"token":"anonymous-pull"}"#.to_vec())
                } else {
                    ("400 Bad Request", String::new(), b"no scope".to_vec())
                }
            } else if !authorized {
                let challenge = format!(
                    "www-authenticate: Bearer realm=\"http://{address}/token\",service=\"registry.test\",scope=\"repository:charts/web:pull\"\r\n"
                );
                ("401 Unauthorized", challenge, b"{}".to_vec())
            } else if path == "/v2/charts/web/manifests/0.3.1" {
                ("200 OK", String::new(), manifest.clone().into_bytes())
            } else if path == format!("/v2/charts/web/blobs/sha256:{digest}") {
                ("200 OK", String::new(), archive.clone())
            } else {
                ("404 Not Found", String::new(), b"{}".to_vec())
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(&body);
        }
    });
    address.to_string()
}

#[test]
fn a_chart_from_an_oci_registry_is_pulled_with_an_anonymous_token() {
    let env = Env::new();
    let api = VirtualApi::start("inside-oci");
    prepare(&env, "oci", &api);
    let registry = serve_registry(packaged());
    let reference = format!("oci://{registry}/charts/web@0.3.1");
    let created = env.vc(&["create", "oci", "--chart", &reference, "--no-connect"]);
    created.code(0);
    assert!(api.inner.get("deployments", "default", "web").is_some(), "{}", created.stderr);
    let described = env.vc(&["describe", "oci", "-o", "json"]).json();
    let recorded = &described["spec"]["charts"][0];
    assert_eq!(recorded["repo"], format!("oci://{registry}/charts"));
    assert_eq!(
        (recorded["name"].as_str(), recorded["version"].as_str()),
        (Some("web"), Some("0.3.1"))
    );

    env.fake.clear_requests();
    let missing =
        env.vc(&["create", "nope", "--chart", &format!("oci://{registry}/charts/web@9.0.0")]);
    missing.code(2);
    assert!(
        missing.stderr.contains("/v2/charts/web/manifests/9.0.0 answered 404"),
        "{}",
        missing.stderr
    );
    let no_version =
        env.vc(&["create", "nope", "--chart", &format!("oci://{registry}/charts/web")]);
    no_version.code(2);
    assert!(no_version.stderr.contains("needs its version"), "{}", no_version.stderr);
    assert!(env.fake.requests().is_empty(), "no request: {:?}", env.fake.requests());
}

#[test]
fn an_object_of_a_chart_the_api_server_refuses_is_named_with_its_template() {
    let env = Env::new();
    let api = VirtualApi::start("inside-refused");
    prepare(&env, "refused", &api);
    let chart = env.sandbox.dir.path().join("app");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(chart.join("Chart.yaml"), "apiVersion: v2\nname: app\nversion: 1.0.0\n")
        .unwrap();
    std::fs::write(
        chart.join("templates/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: fine\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Values.name | default \"Not_Valid\" }}\n",
    )
    .unwrap();
    let run = env.vc(&["create", "refused", "--chart", chart.to_str().unwrap(), "--no-connect"]);
    run.code(1);
    let error = run.stderr.lines().last().unwrap_or_default().to_string();
    assert!(
        error.contains("applying ConfigMap \"Not_Valid\" in namespace \"default\" (from chart "),
        "{}",
        run.stderr
    );
    assert!(error.contains("app/templates/cm.yaml (document 2)) failed"), "{error}");
    assert!(error.contains("metadata.name: Invalid value: \"Not_Valid\""), "{error}");
    assert!(api.inner.get("configmaps", "default", "fine").is_some(), "the one before it applied");
    assert!(env.fake.get("statefulsets", "vc-refused", "refused").is_some(), "the cluster stays");
}
