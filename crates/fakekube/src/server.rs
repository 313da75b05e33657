//! The server handle tests hold: starts the fake on its own thread and runtime on a loopback
//! port, serves HTTP/1.1 (with upgrades), can refuse connections on demand, writes
//! kubeconfigs, and exposes state access, behaviours and faults to tests.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde_json::Value;
use tokio::sync::watch;

use crate::faults::{Fault, FaultAction, Faults, RequestRecord};
use crate::state::{DeleteOpts, PodBehaviour, Settings, State, WriteOpts};
use crate::status::ApiError;

/// State shared by the handlers, the timers and the test handle.
pub struct Shared {
    state: Mutex<State>,
    faults: Mutex<Faults>,
    /// The identity HTTP requests are treated as coming from (`None`: cluster-admin).
    user: Mutex<Option<Arc<crate::rbac::User>>>,
    /// Bumped to end every open watch stream.
    pub watch_drop: watch::Sender<u64>,
    /// `true` while connections are refused.
    refusing: watch::Sender<bool>,
    /// Open client connections.
    connections: std::sync::atomic::AtomicUsize,
    pub addr: SocketAddr,
    pub port_forwards: crate::portforward::PortForwards,
    pub exec: crate::exec::ExecEnv,
}

impl Shared {
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn user(&self) -> Option<Arc<crate::rbac::User>> {
        self.user.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_user(&self, user: Option<crate::rbac::User>) {
        *self.user.lock().unwrap_or_else(|e| e.into_inner()) = user.map(Arc::new);
    }
}

/// Options for starting a fake; see [`FakeKube::builder`].
#[derive(Clone, Debug, Default)]
pub struct Builder {
    settings: Settings,
    user: Option<crate::rbac::User>,
    port: u16,
    objects: Vec<Value>,
}

impl Builder {
    /// Delay from pod creation to Ready (default 50 ms; zero makes pods Ready in the same
    /// write that creates them).
    pub fn ready_delay(mut self, d: Duration) -> Self {
        self.settings.ready_delay = d;
        self
    }

    /// How long a deleted namespace stays Terminating (default 200 ms).
    pub fn termination_delay(mut self, d: Duration) -> Self {
        self.settings.termination_delay = d;
        self
    }

    /// How long a deleted pod stays Terminating (default 100 ms; zero removes at once).
    /// `gracePeriodSeconds=0` in DeleteOptions always removes at once.
    pub fn pod_grace(mut self, d: Duration) -> Self {
        self.settings.pod_grace = d;
        self
    }

    /// How many watch events are kept for resuming watches (default 10 000).
    pub fn event_history(mut self, n: usize) -> Self {
        self.settings.history_limit = n;
        self
    }

    /// Interval of BOOKMARK events on watches that allow them (default 5 s).
    pub fn bookmark_interval(mut self, d: Duration) -> Self {
        self.settings.bookmark_interval = d;
        self
    }

    /// Turns the simulated controllers (workloads, pods, engine Secret) off or on.
    pub fn controllers(mut self, on: bool) -> Self {
        self.settings.controllers = on;
        self
    }

    /// Listens on this port instead of a random one.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Treats HTTP requests as coming from `user` with its rules (see [`FakeKube::act_as`]).
    pub fn user(mut self, user: crate::rbac::User) -> Self {
        self.user = Some(user);
        self
    }

    /// Objects stored before the server accepts connections.
    pub fn objects(mut self, objects: Vec<Value>) -> Self {
        self.objects = objects;
        self
    }

    /// Starts the server; panics if the loopback port cannot be bound.
    pub fn start(self) -> FakeKube {
        self.try_start().expect("fakekube: could not start the server")
    }

    /// Starts the server.
    pub fn try_start(self) -> std::io::Result<FakeKube> {
        let std_listener = std::net::TcpListener::bind(("127.0.0.1", self.port))?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fakekube")
            .enable_all()
            .build()?;
        let mut state = State::new(self.settings);
        for obj in self.objects {
            if let Err(e) = put_object(&mut state, obj) {
                return Err(std::io::Error::other(format!(
                    "fakekube: could not load an object: {}",
                    e.body["message"]
                )));
            }
        }
        let (watch_drop, _) = watch::channel(0);
        let (refusing, _) = watch::channel(false);
        let exec_env = crate::exec::ExecEnv::new()?;
        let shared = Arc::new_cyclic(|weak: &Weak<Shared>| {
            let weak = weak.clone();
            let handle = rt.handle().clone();
            state.set_spawner(Box::new(move |delay, work| {
                let weak = weak.clone();
                handle.spawn(async move {
                    tokio::time::sleep(delay).await;
                    if let Some(shared) = weak.upgrade() {
                        shared.state().run_deferred(work);
                    }
                });
            }));
            Shared {
                state: Mutex::new(state),
                faults: Mutex::new(Faults::default()),
                user: Mutex::new(self.user.map(Arc::new)),
                watch_drop,
                refusing,
                connections: std::sync::atomic::AtomicUsize::new(0),
                addr,
                port_forwards: crate::portforward::PortForwards::new(),
                exec: exec_env,
            }
        });
        let weak = Arc::downgrade(&shared);
        shared.port_forwards.set_pod_check(move |ns, pod| {
            weak.upgrade().is_some_and(|s| {
                let st = s.state();
                st.resolve("pods").is_some_and(|def| st.get(&def, ns, pod).is_some())
            })
        });
        let pf = shared.port_forwards.clone();
        shared.state().on_pod_deleted = Some(Box::new(move |ns, pod| pf.drop_pod(ns, pod)));
        let weak = Arc::downgrade(&shared);
        let handle = rt.handle().clone();
        shared.state().on_init_containers = Some(Box::new(move |pod| {
            handle.spawn(run_init_containers(weak.clone(), pod));
        }));
        let (stop_tx, stop_rx) = watch::channel(false);
        let app = router(shared.clone());
        let listener = {
            let _guard = rt.enter();
            tokio::net::TcpListener::from_std(std_listener)?
        };
        let serve_shared = shared.clone();
        let thread = std::thread::Builder::new().name("fakekube".into()).spawn(move || {
            rt.block_on(serve(listener, app, serve_shared, stop_rx));
            rt.shutdown_timeout(Duration::from_millis(100));
        })?;
        Ok(FakeKube { shared, stop: stop_tx, thread: Some(thread) })
    }
}

/// Runs a pod's shell init containers one after the other, reporting each to the kubelet
/// emulation; stops at the first that fails.
async fn run_init_containers(weak: Weak<Shared>, pod: Value) {
    let (ns, name, uid) = (
        pod["metadata"]["namespace"].as_str().unwrap_or_default().to_owned(),
        pod["metadata"]["name"].as_str().unwrap_or_default().to_owned(),
        pod["metadata"]["uid"].as_str().unwrap_or_default().to_owned(),
    );
    for (container, argv) in crate::controllers::local_init_containers(&pod) {
        let Some(shared) = weak.upgrade() else { return };
        let env = shared.exec.clone();
        let Some(view) = crate::exec::ContainerView::resolve(&env, &pod, &container) else {
            return;
        };
        crate::controllers::init_container_progress(
            &mut shared.state(),
            &ns,
            &name,
            &uid,
            &container,
            None,
        );
        drop(shared);
        let code = crate::exec::run_init(env, view, name.clone(), container.clone(), argv).await;
        let Some(shared) = weak.upgrade() else { return };
        crate::controllers::init_container_progress(
            &mut shared.state(),
            &ns,
            &name,
            &uid,
            &container,
            Some(code),
        );
        if code != 0 {
            return;
        }
    }
}

/// The router: fault middleware over the resource handlers, plus extra routes.
fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .merge(crate::portforward::router(shared.port_forwards.clone()))
        .route(
            crate::exec::ROUTE,
            axum::routing::get(crate::exec::handle).post(crate::exec::handle),
        )
        .fallback(crate::api::handle)
        .layer(axum::middleware::from_fn_with_state(shared.clone(), crate::api::faults_layer))
        .with_state(shared)
}

async fn serve(
    mut listener: tokio::net::TcpListener,
    app: Router,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let addr = shared.addr;
    let mut refusing = shared.refusing.subscribe();
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => return,
            changed = refusing.changed() => {
                if changed.is_err() {
                    return;
                }
                if *refusing.borrow_and_update() {
                    drop(listener);
                    loop {
                        tokio::select! {
                            _ = stop.changed() => return,
                            r = refusing.changed() => {
                                if r.is_err() {
                                    return;
                                }
                                if !*refusing.borrow_and_update() {
                                    break;
                                }
                            }
                        }
                    }
                    listener = match tokio::net::TcpListener::bind(addr).await {
                        Ok(l) => l,
                        Err(_) => return,
                    };
                }
            }
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let service = TowerToHyperService::new(app.clone());
                let mut refusing = shared.refusing.subscribe();
                let mut stop = stop.clone();
                let conn_shared = shared.clone();
                conn_shared.connections.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades();
                    tokio::select! {
                        biased;
                        _ = refusing.wait_for(|r| *r) => {}
                        _ = stop.changed() => {}
                        _ = conn => {}
                    }
                    conn_shared.connections.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                });
            }
        }
    }
}

fn put_object(state: &mut State, obj: Value) -> Result<Value, ApiError> {
    let api_version = obj["apiVersion"].as_str().unwrap_or_default().to_string();
    let kind = obj["kind"].as_str().unwrap_or_default().to_string();
    let def = state.def_for(&api_version, &kind).ok_or_else(|| {
        ApiError::bad_request(format!(
            "no resource type for apiVersion {api_version:?} kind {kind:?}"
        ))
    })?;
    let ns = obj["metadata"]["namespace"].as_str().unwrap_or("default").to_string();
    let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_string();
    let opts = WriteOpts {
        manager: "fakekube".into(),
        keep_status: true,
        skip_admission: true,
        ..Default::default()
    };
    match state.get(&def, &ns, &name).cloned() {
        None => {
            if def.namespaced
                && state.get(&state.resolve("namespaces").expect("built in"), "", &ns).is_none()
            {
                let ns_def = state.resolve("namespaces").expect("built in");
                state.create(&ns_def, "", serde_json::json!({"metadata": {"name": ns}}), &opts)?;
            }
            state.create(&def, &ns, obj, &opts)
        }
        Some(_) => {
            let status = obj.get("status").cloned();
            let mut body = obj;
            if let Some(m) = body["metadata"].as_object_mut() {
                m.remove("resourceVersion");
            }
            let out = state.update(&def, &ns, &name, body, &opts)?;
            match status {
                Some(s) if def.has_status() => {
                    Ok(state.write_status(&def, &ns, &name, s, "fakekube").unwrap_or(out))
                }
                _ => Ok(out),
            }
        }
    }
}

/// A running fake API server. Dropping it stops the server.
pub struct FakeKube {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl FakeKube {
    /// Options for a new fake.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// Starts a fake with default settings on a random loopback port.
    pub fn start() -> FakeKube {
        Builder::default().start()
    }

    /// Same as [`FakeKube::start`], for use inside async tests (the server still runs on
    /// its own thread and runtime).
    pub async fn start_async() -> FakeKube {
        Builder::default().start()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// A kubeconfig with one cluster, user and context named `context_name`, current.
    pub fn kubeconfig_yaml(&self, context_name: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: {c}\n  cluster:\n    server: {url}\ncontexts:\n- name: {c}\n  context:\n    cluster: {c}\n    user: {c}\ncurrent-context: {c}\nusers:\n- name: {c}\n  user:\n    token: fakekube-token\npreferences: {{}}\n",
            c = context_name,
            url = self.url()
        )
    }

    /// Writes [`FakeKube::kubeconfig_yaml`] to `path`.
    pub fn write_kubeconfig(
        &self,
        path: impl AsRef<Path>,
        context_name: &str,
    ) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml(context_name))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state()
    }

    fn def(&self, resource: &str) -> crate::registry::ResourceDef {
        self.state()
            .resolve(resource)
            .unwrap_or_else(|| panic!("fakekube: unknown resource type {resource:?}"))
    }

    // ----- state access -----

    /// The object, if present. `resource` is kubectl-style (`statefulsets`, `sts`,
    /// `statefulsets.apps`, `pod`); `namespace` is ignored for cluster-scoped types.
    pub fn get(&self, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        let def = self.def(resource);
        self.state().get(&def, namespace, name).cloned()
    }

    /// Objects of a type in one namespace (`Some`) or all (`None`), sorted by namespace/name.
    pub fn list(&self, resource: &str, namespace: Option<&str>) -> Vec<Value> {
        let def = self.def(resource);
        self.state().list(&def, namespace).into_iter().cloned().collect()
    }

    /// Number of objects of a type in one namespace or all.
    pub fn count(&self, resource: &str, namespace: Option<&str>) -> usize {
        let def = self.def(resource);
        self.state().count(&def, namespace)
    }

    /// Creates or replaces an object (with its status) from a full manifest, creating its
    /// namespace if missing. Controllers react as to any write.
    pub fn put(&self, obj: Value) -> Result<Value, ApiError> {
        put_object(&mut self.state(), obj)
    }

    /// Replaces an object's status.
    pub fn set_status(
        &self,
        resource: &str,
        namespace: &str,
        name: &str,
        status: Value,
    ) -> Result<Value, ApiError> {
        let def = self.def(resource);
        let mut st = self.state();
        if st.get(&def, namespace, name).is_none() {
            return Err(ApiError::not_found(&def, name));
        }
        st.write_status(&def, namespace, name, status, "fakekube")
            .or_else(|| st.get(&def, namespace, name).cloned())
            .ok_or_else(|| ApiError::not_found(&def, name))
    }

    /// Deletes an object as a DELETE request would (namespaces go Terminating first).
    pub fn delete(&self, resource: &str, namespace: &str, name: &str) -> Result<Value, ApiError> {
        let def = self.def(resource);
        self.state().delete(&def, namespace, name, &DeleteOpts::default())
    }

    /// Removes an object at once (no finalizers or Terminating phase); dependents are
    /// garbage-collected.
    pub fn remove_now(&self, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        let def = self.def(resource);
        self.state().remove_now(&def, namespace, name)
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.state().resource_version()
    }

    /// Sets the log lines `pods/log` returns for a pod.
    pub fn set_pod_logs(&self, namespace: &str, pod: &str, lines: &[&str]) {
        self.state().logs.insert(
            (namespace.to_string(), pod.to_string()),
            lines.iter().map(|s| s.to_string()).collect(),
        );
    }

    /// Points the `kubernetes` Endpoints and EndpointSlice in namespace `default` at these
    /// API server addresses `(ip, port)` (default `[("172.18.0.2", 6443)]`).
    pub fn set_api_endpoints(&self, endpoints: &[(&str, u16)]) {
        let owned: Vec<(String, u16)> =
            endpoints.iter().map(|(ip, p)| (ip.to_string(), *p)).collect();
        self.state().set_api_endpoints(&owned);
    }

    // ----- behaviours -----

    /// Pod behaviour for the virtual cluster `cluster` (pods labelled `release=<cluster>` or
    /// `vcluster.loft.sh/managed-by=<cluster>`).
    pub fn set_behaviour(&self, cluster: &str, behaviour: PodBehaviour) {
        self.state().settings.behaviours.insert(cluster.to_string(), behaviour);
    }

    /// Makes `image` unpullable: containers using it wait in `ErrImagePull` (the kubelet's
    /// message for a missing image) and the pod stays Pending; the pod's other containers run.
    /// The node address pods report as `hostIP` (for pods started from now on).
    pub fn set_node_address(&self, address: &str) {
        self.state().settings.node_address = address.to_string();
    }

    /// Runs a load-balancer controller that gives every Service of type LoadBalancer this
    /// address (an IP or a hostname).
    pub fn set_load_balancer_address(&self, address: Option<&str>) {
        self.state().settings.load_balancer_address = address.map(str::to_string);
    }

    /// The address an ingress controller publishes for every Ingress; None: no controller.
    pub fn set_ingress_address(&self, address: Option<&str>) {
        self.state().settings.ingress_address = address.map(str::to_string);
    }

    pub fn set_image_absent(&self, image: &str) {
        self.state().settings.absent_images.insert(image.to_string());
    }

    /// Pod behaviour for every cluster without its own.
    pub fn set_default_behaviour(&self, behaviour: PodBehaviour) {
        self.state().settings.default_behaviour = behaviour;
    }

    /// Changes the pod ready delay for pods created from now on.
    pub fn set_ready_delay(&self, d: Duration) {
        self.state().settings.ready_delay = d;
    }

    /// Changes how long deleted namespaces stay Terminating.
    pub fn set_termination_delay(&self, d: Duration) {
        self.state().settings.termination_delay = d;
    }

    /// Changes how long pods deleted from now on stay Terminating.
    pub fn set_pod_grace(&self, d: Duration) {
        self.state().settings.pod_grace = d;
    }

    /// Whether the engine's kubeconfig Secret `vc-<name>` appears when the control plane
    /// pod is Ready (default on).
    pub fn set_engine_secret(&self, on: bool) {
        self.state().settings.engine_secret = on;
    }

    /// Makes the engine write its certificate Secret `<name>-certs`, with `admin_conf` under
    /// `admin.conf`, as soon as a control-plane pod is Running (off by default).
    pub fn set_engine_certs(&self, admin_conf: Option<&str>) {
        self.state().settings.engine_admin_conf = admin_conf.map(str::to_string);
    }

    /// Server address written into the engine's kubeconfig Secret (default
    /// `https://localhost:8443`).
    pub fn set_engine_server(&self, server: &str) {
        self.state().settings.engine_server = server.to_string();
    }

    // ----- port-forward -----

    /// Bridges `port` of pod `ns/pod` to a loopback TCP target.
    pub fn set_port_forward_target(&self, ns: &str, pod: &str, port: u16, target: SocketAddr) {
        self.shared.port_forwards.set_target(ns, pod, port, target);
    }

    /// Breaks every open port-forward stream now (targets stay).
    pub fn drop_port_forwards(&self) {
        self.shared.port_forwards.drop_all();
    }

    /// The port-forward endpoint's state: `remove_target`, `remove_pod`, `drop_pod`,
    /// `active()`, `opened()`.
    pub fn port_forwards(&self) -> crate::portforward::PortForwards {
        self.shared.port_forwards.clone()
    }

    // ----- exec and the engine's datastore -----

    /// The exec endpoint's state: datastores, sandbox directories, `set_rate_limit`,
    /// `drop_all`, `opened()`, `init_exit`.
    pub fn exec(&self) -> crate::exec::ExecEnv {
        self.shared.exec.clone()
    }

    /// A copy of the engine datastore stand-in on claim `ns/claim` (`data-<name>-0` for a
    /// virtual cluster `name`).
    pub fn datastore(&self, ns: &str, claim: &str) -> crate::exec::Datastore {
        self.shared.exec.datastore(ns, claim)
    }

    /// Writes one key into the datastore stand-in on claim `ns/claim`.
    pub fn datastore_put(&self, ns: &str, claim: &str, key: &[u8], value: &[u8]) {
        self.shared.exec.datastore_put(ns, claim, key, value);
    }

    // ----- identity (RBAC) -----

    /// From now on, HTTP requests are treated as coming from `user`: anything its rules do
    /// not allow is refused with the real RBAC 403, and Role / RoleBinding writes granting
    /// more than it holds are refused as escalation. State access from the test is not
    /// affected.
    pub fn act_as(&self, user: crate::rbac::User) {
        self.shared.set_user(Some(user));
    }

    /// Back to the default identity (cluster-admin: everything allowed).
    pub fn act_as_admin(&self) {
        self.shared.set_user(None);
    }

    // ----- faults -----

    /// Adds a fault rule; see [`Fault`].
    pub fn add_fault(&self, fault: Fault) {
        self.shared.faults().rules.push(fault);
    }

    /// Answers requests with `method` (any when `None`) whose path contains `path_contains`
    /// with the real `Status` body for `code` (401 Unauthorized, 403 Forbidden for user
    /// `fakekube-user`, 409 Conflict, 500 InternalError, others as InternalError-shaped).
    pub fn fail(&self, method: Option<&str>, path_contains: &str, code: u16) {
        let action = match code {
            401 => FaultAction::Respond(ApiError::unauthorized()),
            403 => FaultAction::Forbid { user: "fakekube-user".to_string() },
            500 => FaultAction::Respond(ApiError::internal("injected failure")),
            c => FaultAction::Respond(ApiError::new(c, "InternalError", "injected failure", None)),
        };
        self.add_fault(Fault {
            method: method.map(str::to_string),
            path_contains: path_contains.to_string(),
            action,
            ..Fault::default()
        });
    }

    /// Like [`FakeKube::fail`], for requests with this Kubernetes verb (`list`, `watch`,
    /// `get`, `create`, `apply`, ...) whose path contains `path_contains`.
    pub fn fail_verb(&self, verb: &str, path_contains: &str, code: u16) {
        self.fail(None, path_contains, code);
        if let Some(last) = self.shared.faults().rules.last_mut() {
            last.verb = Some(verb.to_string());
        }
    }

    /// Answers matching requests with the RBAC Forbidden body naming `user`.
    pub fn forbid(&self, method: Option<&str>, path_contains: &str, user: &str) {
        self.add_fault(Fault {
            method: method.map(str::to_string),
            path_contains: path_contains.to_string(),
            action: FaultAction::Forbid { user: user.to_string() },
            ..Fault::default()
        });
    }

    /// Delays matching requests by `delay`.
    pub fn delay(&self, method: Option<&str>, path_contains: &str, delay: Duration) {
        self.add_fault(Fault {
            method: method.map(str::to_string),
            path_contains: path_contains.to_string(),
            action: FaultAction::Delay(delay),
            ..Fault::default()
        });
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        self.shared.faults().rules.clear();
    }

    /// Closes the listener and every open connection (`true`), so connecting fails with
    /// "connection refused"; `false` listens again on the same port.
    pub fn refuse_connections(&self, refuse: bool) {
        let _ = self.shared.refusing.send(refuse);
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while std::time::Instant::now() < deadline {
            let open = self.shared.connections.load(std::sync::atomic::Ordering::SeqCst);
            if refuse && open == 0 && std::net::TcpStream::connect(self.shared.addr).is_err() {
                break;
            }
            if !refuse && std::net::TcpStream::connect(self.shared.addr).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Ends every open watch stream now (clients see the stream end and re-watch).
    pub fn drop_watches(&self) {
        self.shared.watch_drop.send_modify(|n| *n += 1);
    }

    /// Forgets the watch-event history, so watches from any older resourceVersion get an
    /// ERROR event with 410 Gone (Expired).
    pub fn compact(&self) {
        self.state().compact();
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.faults().log.clone()
    }

    /// Number of requests with this verb (`list`, `get`, `watch`, `create`, `apply`, ...)
    /// whose path contains `path_contains`.
    pub fn count_requests(&self, verb: &str, path_contains: &str) -> usize {
        self.shared.faults().log.iter().filter(|r| r.is(verb, path_contains)).count()
    }

    /// Empties the request log.
    pub fn clear_requests(&self) {
        self.shared.faults().log.clear();
    }
}
