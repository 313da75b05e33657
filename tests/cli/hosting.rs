//! Where the cluster runs and how it is reached and stored, against the fake host: placement
//! on the control plane and in the engine's configuration, round-tripping through the values
//! file, the record and `describe -o json`; bad values refused before any host contact.

use serde_json::{Value, json};

use crate::bad_input::unreachable_kubeconfig;
use crate::connect::{Env, assert_lists_virtual_namespaces, named};
use crate::support::{Sandbox, Vc, fake_host as host};
use crate::tls::VirtualApi;

fn recorded_spec(fake: &fakekube::FakeKube) -> Value {
    let sts = fake.get("statefulsets", "vc-dev", "dev").expect("StatefulSet dev");
    serde_json::from_str(sts["metadata"]["annotations"]["vc.dev/spec"].as_str().unwrap()).unwrap()
}

/// The engine configuration `vc` wrote into the Secret `vc-config-dev`.
fn engine_config(fake: &fakekube::FakeKube) -> Value {
    use base64::Engine as _;
    let secret = fake.get("secrets", "vc-dev", "vc-config-dev").expect("Secret vc-config-dev");
    let encoded = secret["data"]["config.yaml"].as_str().expect("config.yaml");
    let text = base64::engine::general_purpose::STANDARD.decode(encoded).expect("base64");
    serde_saphyr::from_str(std::str::from_utf8(&text).expect("UTF-8")).expect("YAML")
}

#[test]
fn placement_round_trips_and_is_enforced() {
    let (fake, sandbox) = host();
    let values = sandbox.home().join("values.yaml");
    std::fs::write(
        &values,
        "placement:\n  nodeSelector:\n    pool: ci\n  tolerations: [\"dedicated=ci:NoSchedule\"]\n  priorityClassName: ci-low\n",
    )
    .unwrap();
    let args = [
        "create",
        "dev",
        "--no-connect",
        "--no-wait",
        "-f",
        values.to_str().unwrap(),
        "--node-selector",
        "kubernetes.io/arch=amd64",
        "--toleration",
        "spot:NoExecute",
        "--runtime-class",
        "gvisor",
    ];
    Vc::new(&sandbox).args(args).run().code(0);
    let expected = json!({
        "nodeSelector": {"kubernetes.io/arch": "amd64", "pool": "ci"},
        "tolerations": ["dedicated=ci:NoSchedule", "spot:NoExecute"],
        "runtimeClassName": "gvisor",
        "priorityClassName": "ci-low",
    });
    assert_eq!(recorded_spec(&fake)["placement"], expected);

    let sts = fake.get("statefulsets", "vc-dev", "dev").unwrap();
    let pod = &sts["spec"]["template"]["spec"];
    assert_eq!(pod["nodeSelector"], expected["nodeSelector"]);
    assert_eq!(pod["runtimeClassName"], "gvisor");
    assert_eq!(pod["priorityClassName"], "ci-low");
    assert_eq!(
        pod["tolerations"],
        json!([
            {"key": "dedicated", "operator": "Equal", "value": "ci", "effect": "NoSchedule"},
            {"key": "spot", "operator": "Exists", "effect": "NoExecute"},
        ])
    );

    let config = engine_config(&fake);
    let pods = &config["sync"]["toHost"]["pods"];
    assert_eq!(pods["enforceTolerations"], expected["tolerations"]);
    assert_eq!(pods["runtimeClassName"], "gvisor");
    assert_eq!(pods["priorityClassName"], "ci-low");
    assert_eq!(config["sync"]["fromHost"]["nodes"]["selector"]["labels"], expected["nodeSelector"]);

    let described = Vc::new(&sandbox).args(["describe", "dev", "-o", "json"]).run();
    described.code(0);
    assert_eq!(described.json()["spec"]["placement"], expected);
    assert_eq!(described.json()["enforced"], expected);
    let text = Vc::new(&sandbox).args(["describe", "dev"]).run();
    text.code(0);
    assert!(text.stdout.contains("Enforced on every pod:"), "{}", text.stdout);
    assert!(
        text.stdout.contains("tolerations:      dedicated=ci:NoSchedule, spot:NoExecute"),
        "{}",
        text.stdout
    );
}

#[test]
fn bad_hosting_values_are_refused_before_contacting_the_host() {
    let sandbox = Sandbox::new();
    unreachable_kubeconfig(&sandbox);
    let values = sandbox.home().join("values.yaml");
    std::fs::write(&values, "placement:\n  runtimeClassName: G_Visor\n").unwrap();
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("node selector without a value", vec!["--node-selector", "pool"]),
        ("node selector with a bad key", vec!["--node-selector", "a b=c"]),
        ("toleration with an unknown effect", vec!["--toleration", "spot:Sometimes"]),
        ("toleration with two values", vec!["--toleration", "a=b=c"]),
        ("bad priority class", vec!["--priority-class", "Low Priority"]),
        ("bad runtime class in a values file", vec!["-f", values.to_str().unwrap()]),
        ("unknown expose type", vec!["--expose", "clusterip"]),
        ("unknown datastore", vec!["--datastore", "postgres"]),
        ("ingress without a host", vec!["--expose", "ingress"]),
        ("ingress at an IP address", vec!["--expose", "ingress=192.168.1.10"]),
        ("ingress host with a wildcard", vec!["--expose", "ingress=*.example.com"]),
        ("ingress host in capitals", vec!["--expose", "ingress=Dev.Example.com"]),
        ("ingress port out of range", vec!["--expose", "ingress=dev.example.com:70000"]),
        ("ingress class without an ingress", vec!["--ingress-class", "nginx"]),
        (
            "bad ingress class",
            vec!["--expose", "ingress=dev.example.com", "--ingress-class", "Nginx Public"],
        ),
    ];
    let transcript = crate::support::create_refusals(&sandbox, cases);
    insta::assert_snapshot!(crate::support::filter(&transcript, &sandbox));
}

/// The node port of the Service's API port.
fn api_node_port(fake: &fakekube::FakeKube, namespace: &str, name: &str) -> u16 {
    let svc = fake.get("services", namespace, name).expect("the cluster's Service");
    let port = svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "https")
        .expect("the https port")["nodePort"]
        .as_u64()
        .expect("a node port");
    u16::try_from(port).unwrap()
}

#[test]
fn nodeport_is_reached_without_a_forward_and_forward_forces_one() {
    let env = Env::new();
    // The node's address is this machine's loopback, so its node port is a local port.
    env.fake.set_node_address("127.0.0.1");
    env.vc(&["create", "dev", "--expose", "nodeport", "--no-connect"]).code(0);
    let svc = env.fake.get("services", "vc-dev", "dev").unwrap();
    assert_eq!(svc["spec"]["type"], "NodePort");
    let node_port = api_node_port(&env.fake, "vc-dev", "dev");
    assert!((30000..=32767).contains(&node_port), "{node_port}");
    // The quota leaves room for the Service's node ports.
    let quota = env.fake.get("resourcequotas", "vc-dev", "vc-dev").unwrap();
    assert_eq!(quota["spec"]["hard"]["services.nodeports"], "2");
    assert_eq!(recorded_spec(&env.fake)["expose"], json!({"type": "NodePort"}));

    let api = VirtualApi::start_at("exposed-dev", &format!("127.0.0.1:{node_port}"));
    env.serve("dev", &api);
    let connected = env.vc(&["connect", "dev", "-o", "json"]);
    connected.code(0);
    let server = format!("https://127.0.0.1:{node_port}");
    assert_eq!(connected.json()["server"], server.as_str());
    assert!(connected.json().get("localPort").is_none(), "{}", connected.stdout);
    assert!(env.forwards().is_empty(), "no forward: {:?}", env.forwards());
    let config = env.kubeconfig();
    assert_eq!(named(&config, "clusters", "vc-dev").unwrap()["cluster"]["server"], server.as_str());
    assert_lists_virtual_namespaces(
        &env.kubectl(&env.sandbox.kubeconfig(), &["get", "ns", "-o", "name"]),
        "exposed-dev",
    );
    let printed = env.vc(&["kubeconfig", "dev"]);
    printed.code(0);
    assert!(printed.stdout.contains(&format!("server: {server}")), "{}", printed.stdout);

    // --forward: a local forward, as for a cluster that is not exposed.
    let forwarded = env.vc(&["connect", "dev", "--forward", "-o", "json"]);
    forwarded.code(0);
    let port = forwarded.json()["localPort"].as_u64().expect("a local port");
    assert_eq!(forwarded.json()["server"], format!("https://127.0.0.1:{port}").as_str());
    assert_eq!(env.forward("dev")["port"], port);
}

#[test]
fn create_waits_for_the_load_balancer_address_as_a_phase() {
    let env = Env::new();
    env.fake.set_load_balancer_address(Some("127.0.0.1"));
    env.vc(&["create", "lb", "--expose", "loadbalancer", "--no-connect"]).code(0);
    let svc = env.fake.get("services", "vc-lb", "lb").unwrap();
    assert_eq!(svc["spec"]["type"], "LoadBalancer");
    assert_eq!(svc["status"]["loadBalancer"]["ingress"][0]["ip"], "127.0.0.1");
    let ports: Vec<&str> = svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(ports, ["https"], "a load balancer carries the API port only");
    let printed = env.vc(&["kubeconfig", "lb"]);
    printed.code(0);
    assert!(printed.stdout.contains("server: https://127.0.0.1:443"), "{}", printed.stdout);

    // No load-balancer controller: create waits in its `exposed` phase, then says why.
    env.fake.set_load_balancer_address(None);
    let api = VirtualApi::start("pending");
    let labels = json!({"app.kubernetes.io/managed-by": "vc", "vc.dev/cluster": "pending"});
    env.fake
        .put(json!({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": "vc-pending", "labels": labels}}))
        .expect("namespace");
    env.serve("pending", &api);
    let run = env.vc(&["create", "pending", "--expose", "loadbalancer", "--timeout", "8s"]);
    run.code(4);
    assert!(run.stderr.contains("is ready, but connecting to it failed"), "{}", run.stderr);
    assert!(
        run.stderr.contains("has no address after") && run.stderr.contains("--forward"),
        "{}",
        run.stderr
    );
    assert!(env.forwards().is_empty(), "no forward: {:?}", env.forwards());
}

/// A free loopback port in the node-port range.
fn free_node_port() -> u16 {
    (30000..=32767)
        .find(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free port in 30000-32767")
}

#[test]
fn create_connects_to_the_exposed_address() {
    let env = Env::new();
    env.fake.set_node_address("127.0.0.1");
    let port = free_node_port();
    let api = VirtualApi::start_at("inside-np", &format!("127.0.0.1:{port}"));
    let labels = json!({"app.kubernetes.io/managed-by": "vc", "vc.dev/cluster": "np"});
    env.fake
        .put(json!({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": "vc-np", "labels": labels}}))
        .expect("namespace");
    env.serve("np", &api);
    // The engine's own key pins the node port, so the stand-in can listen there beforehand.
    let values = env.sandbox.home().join("np.yaml");
    std::fs::write(
        &values,
        format!("expose:\n  type: NodePort\nengine:\n  values:\n    controlPlane:\n      service:\n        httpsNodePort: {port}\n"),
    )
    .unwrap();
    let created = env.vc(&["create", "np", "-f", values.to_str().unwrap(), "-o", "json"]);
    created.code(0);
    let result = created.json();
    assert_eq!(result["server"], format!("https://127.0.0.1:{port}").as_str());
    assert!(result["timings"]["exposed"].is_number(), "{result}");
    assert!(result["timings"]["connected"].is_number(), "{result}");
    assert_eq!(api_node_port(&env.fake, "vc-np", "np"), port);
    assert!(env.forwards().is_empty(), "no forward: {:?}", env.forwards());
    assert_eq!(env.kubeconfig()["current-context"], "vc-np");
    // A cluster that is not exposed has no `exposed` phase at all.
    let plain = env.vc(&["create", "plain", "--no-wait", "-o", "json"]);
    plain.code(0);
    assert!(plain.json()["timings"].get("exposed").is_none(), "{}", plain.stdout);
}

#[test]
fn the_datastore_kind_is_in_the_record_list_and_describe() {
    let (fake, sandbox) = host();
    let values = sandbox.home().join("values.yaml");
    std::fs::write(&values, "datastore:\n  kind: sqlite\n").unwrap();
    let args = ["create", "dev", "--no-connect", "--no-wait", "-f", values.to_str().unwrap()];
    Vc::new(&sandbox).args(args).run().code(0);
    // The default kind is what a record without the field means.
    assert!(recorded_spec(&fake).get("datastore").is_none());
    let listed = Vc::new(&sandbox).args(["list", "-o", "json"]).run();
    listed.code(0);
    assert_eq!(listed.json()[0]["datastore"], "sqlite");
    let described = Vc::new(&sandbox).args(["describe", "dev", "-o", "json"]).run();
    described.code(0);
    assert_eq!(described.json()["datastore"], "sqlite");
    let text = Vc::new(&sandbox).args(["describe", "dev"]).run();
    assert!(text.stdout.contains("Datastore:          sqlite"), "{}", text.stdout);
}

/// A host that never resolves (RFC 2606 reserves `.invalid`).
const UNRESOLVED_HOST: &str = "dev.ingress.invalid";

fn ingress_class(name: &str, default: bool) -> Value {
    let mut class = json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                           "metadata": {"name": name},
                           "spec": {"controller": "k8s.io/ingress-nginx"}});
    if default {
        class["metadata"]["annotations"] =
            json!({"ingressclass.kubernetes.io/is-default-class": "true"});
    }
    class
}

#[test]
fn ingress_round_trips_and_puts_its_host_in_the_certificate() {
    let env = Env::new();
    env.fake.put(ingress_class("nginx", false)).expect("IngressClass");
    let values = env.sandbox.home().join("values.yaml");
    std::fs::write(
        &values,
        format!("expose:\n  type: Ingress\n  host: {UNRESOLVED_HOST}\n  className: nginx\n"),
    )
    .unwrap();
    let created =
        env.vc(&["create", "dev", "--no-connect", "--no-wait", "-f", values.to_str().unwrap()]);
    created.code(0);
    assert!(!created.stderr.contains("IngressClass"), "the class exists: {}", created.stderr);
    let expected = json!({"type": "Ingress", "host": UNRESOLVED_HOST, "className": "nginx"});
    assert_eq!(recorded_spec(&env.fake)["expose"], expected);

    // The Ingress the chart renders, in front of a ClusterIP Service.
    let ingress = env.fake.get("ingresses", "vc-dev", "dev").expect("Ingress dev");
    assert_eq!(ingress["spec"]["ingressClassName"], "nginx");
    assert_eq!(ingress["spec"]["rules"][0]["host"], UNRESOLVED_HOST);
    assert_eq!(
        ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"],
        json!({"name": "dev", "port": {"name": "https"}})
    );
    assert_eq!(
        ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/ssl-passthrough"],
        "true"
    );
    let svc = env.fake.get("services", "vc-dev", "dev").unwrap();
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    // The engine puts controlPlane.ingress.host in its serving certificate.
    let config = engine_config(&env.fake);
    assert_eq!(config["controlPlane"]["ingress"]["enabled"], true);
    assert_eq!(config["controlPlane"]["ingress"]["host"], UNRESOLVED_HOST);

    let described = env.vc(&["describe", "dev", "-o", "json"]);
    described.code(0);
    assert_eq!(described.json()["spec"]["expose"], expected);
    assert_eq!(
        described.json()["endpoint"],
        json!({"type": "Ingress", "url": format!("https://{UNRESOLVED_HOST}"), "ingressClass": "nginx"})
    );
    let text = env.vc(&["describe", "dev"]);
    assert!(
        text.stdout.contains(&format!(
            "Endpoint:           https://{UNRESOLVED_HOST} (Ingress, no controller address published yet, class nginx)"
        )),
        "{}",
        text.stdout
    );

    // The kubeconfig names the Ingress host; connecting tells that it does not resolve and
    // where to point it, and --forward connects through a forward instead.
    let published = json!({"loadBalancer": {"ingress": [{"ip": "172.18.0.5"}]}});
    env.fake.set_status("ingresses", "vc-dev", "dev", published).expect("Ingress status");
    let api = VirtualApi::start("inside-dev");
    env.serve("dev", &api);
    let printed = env.vc(&["kubeconfig", "dev"]);
    printed.code(0);
    assert!(
        printed.stdout.contains(&format!("server: https://{UNRESOLVED_HOST}\n")),
        "{}",
        printed.stdout
    );
    let refused = env.vc(&["connect", "dev", "--timeout", "20s"]);
    refused.code(5);
    assert!(
        refused
            .stderr
            .contains(&format!("the Ingress host \"{UNRESOLVED_HOST}\" does not resolve"))
            && refused.stderr.contains("172.18.0.5")
            && refused.stderr.contains("vc connect dev --forward"),
        "{}",
        refused.stderr
    );
    let forwarded = env.vc(&["connect", "dev", "--forward", "-o", "json"]);
    forwarded.code(0);
    let port = forwarded.json()["localPort"].as_u64().expect("a local port");
    assert_eq!(forwarded.json()["server"], format!("https://127.0.0.1:{port}").as_str());

    // Re-applied without --expose, the Ingress goes.
    env.vc(&["create", "dev", "--upsert", "--no-connect", "--no-wait"]).code(0);
    assert!(env.fake.get("ingresses", "vc-dev", "dev").is_none(), "the Ingress is pruned");
}

#[test]
fn create_connects_through_the_ingress_without_a_forward() {
    let env = Env::new();
    // The ingress controller publishes this machine's loopback; `localhost` resolves to it,
    // and the stand-in API server behind it holds a certificate for localhost.
    env.fake.set_ingress_address(Some("127.0.0.1"));
    let api = VirtualApi::start("inside-ing");
    let port = api.addr().port();
    let labels = json!({"app.kubernetes.io/managed-by": "vc", "vc.dev/cluster": "ing"});
    env.fake
        .put(json!({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": "vc-ing", "labels": labels}}))
        .expect("namespace");
    env.serve("ing", &api);
    let expose = format!("ingress=localhost:{port}");
    let created = env.vc(&["create", "ing", "--expose", &expose, "-o", "json"]);
    created.code(0);
    // No IngressClass on the host: said before anything is applied, and the create goes on.
    assert!(created.stderr.contains("the host has no IngressClass"), "{}", created.stderr);
    let result = created.json();
    let server = format!("https://localhost:{port}");
    assert_eq!(result["server"], server.as_str());
    assert!(result["timings"]["exposed"].is_number(), "{result}");
    assert!(env.forwards().is_empty(), "no forward: {:?}", env.forwards());
    let config = env.kubeconfig();
    assert_eq!(named(&config, "clusters", "vc-ing").unwrap()["cluster"]["server"], server.as_str());
    assert_lists_virtual_namespaces(
        &env.kubectl(&env.sandbox.kubeconfig(), &["get", "ns", "-o", "name"]),
        "inside-ing",
    );
    let connected = env.vc(&["connect", "ing", "-o", "json"]);
    connected.code(0);
    assert_eq!(connected.json()["server"], server.as_str());
    assert!(connected.json().get("localPort").is_none(), "{}", connected.stdout);
}

#[test]
fn create_forward_skips_the_ingress() {
    let env = Env::new();
    env.fake.put(ingress_class("nginx", true)).expect("IngressClass");
    let api = VirtualApi::start("inside-fw");
    let labels = json!({"app.kubernetes.io/managed-by": "vc", "vc.dev/cluster": "fw"});
    env.fake
        .put(json!({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": "vc-fw", "labels": labels}}))
        .expect("namespace");
    env.serve("fw", &api);
    let expose = format!("ingress={UNRESOLVED_HOST}");
    let created = env.vc(&["create", "fw", "--expose", &expose, "--forward", "-o", "json"]);
    created.code(0);
    assert!(!created.stderr.contains("IngressClass"), "a default class exists: {}", created.stderr);
    let port = created.json()["server"].as_str().unwrap().rsplit(':').next().unwrap().to_string();
    assert_eq!(env.forward("fw")["port"].to_string(), port);
    assert!(created.json()["timings"].get("exposed").is_none(), "{}", created.stdout);
    assert!(env.fake.get("ingresses", "vc-fw", "fw").is_some());
}

#[test]
fn an_ingress_without_a_controller_ends_the_create_naming_forward() {
    let env = Env::new();
    // No controller publishes an address: the exposed phase waits, then says why.
    let api = VirtualApi::start("no-controller");
    let labels = json!({"app.kubernetes.io/managed-by": "vc", "vc.dev/cluster": "nc"});
    env.fake
        .put(json!({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": "vc-nc", "labels": labels}}))
        .expect("namespace");
    env.serve("nc", &api);
    let expose = format!("ingress={UNRESOLVED_HOST}");
    let args =
        ["create", "nc", "--expose", &expose, "--ingress-class", "public", "--timeout", "8s"];
    let run = env.vc(&args);
    run.code(4);
    assert!(run.stderr.contains("is ready, but connecting to it failed"), "{}", run.stderr);
    assert!(
        run.stderr.contains("the Ingress of virtual cluster \"nc\" has no address after")
            && run.stderr.contains("IngressClass \"public\"")
            && run.stderr.contains("vc connect nc --forward"),
        "{}",
        run.stderr
    );
    assert!(env.forwards().is_empty(), "no forward: {:?}", env.forwards());
}

#[test]
fn a_host_without_ingresses_is_refused_before_anything_is_applied() {
    let (fake, sandbox) = host();
    fake.add_fault(fakekube::Fault {
        path_contains: "/apis/networking.k8s.io/v1$".to_string(),
        action: fakekube::FaultAction::Respond(fakekube::ApiError::path_not_found()),
        ..fakekube::Fault::default()
    });
    let run = Vc::new(&sandbox)
        .args(["create", "dev", "--no-connect", "--expose", "ingress=dev.example.com"])
        .run();
    run.code(1);
    assert!(
        run.stderr.contains("does not serve networking.k8s.io/v1 Ingresses")
            && run.stderr.contains("--expose nodeport or loadbalancer"),
        "{}",
        run.stderr
    );
    // A rights review is a create that stores nothing; no object is applied.
    assert_eq!(fake.count_requests("apply", "/"), 0, "nothing applied");
    assert!(fake.get("namespaces", "", "vc-dev").is_none());
}
