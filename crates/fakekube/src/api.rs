//! HTTP handlers: path routing, the REST verbs over the store, watch streams, pod logs, the
//! scale subresource, Table output, and the fault-injection / request-log middleware.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State as AxState};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use crate::discovery;
use crate::faults::{FaultAction, RequestRecord};
use crate::registry::ResourceDef;
use crate::selector::{FieldSelector, LabelSelector};
use crate::server::Shared;
use crate::state::{DeleteOpts, PatchKind, WatchEvent, WriteOpts};
use crate::status::ApiError;
use crate::table;

pub fn json_response(code: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    Response::builder()
        .status(code)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(bytes))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

fn ok(body: &Value) -> Response {
    json_response(StatusCode::OK, body)
}

/// A request for a resource, by path structure alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourcePath {
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub plural: String,
    pub name: Option<String>,
    pub sub: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    Version,
    Api,
    Apis,
    Group(String),
    GroupVersion(String, String),
    OpenApiV3Index,
    OpenApiV3Doc(String),
    Health,
    Resource(ResourcePath),
    NotFound,
}

pub fn parse_route(path: &str) -> Route {
    let segs: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = match segs.as_slice() {
        ["version"] => return Route::Version,
        ["healthz" | "readyz" | "livez", ..] => return Route::Health,
        ["api"] => return Route::Api,
        ["apis"] => return Route::Apis,
        ["openapi", "v3"] => return Route::OpenApiV3Index,
        ["openapi", "v3", rest @ ..] => return Route::OpenApiV3Doc(rest.join("/")),
        ["api", v] => return Route::GroupVersion(String::new(), v.to_string()),
        ["apis", g] => return Route::Group(g.to_string()),
        ["apis", g, v] => return Route::GroupVersion(g.to_string(), v.to_string()),
        ["api", v, rest @ ..] => (String::new(), v.to_string(), rest),
        ["apis", g, v, rest @ ..] => (g.to_string(), v.to_string(), rest),
        _ => return Route::NotFound,
    };
    let own = |s: &&str| s.to_string();
    let (namespace, plural, name, sub) = match rest {
        ["namespaces"] => (None, "namespaces".to_string(), None, None),
        ["namespaces", n] => (None, "namespaces".to_string(), Some(own(n)), None),
        ["namespaces", n, s @ ("status" | "finalize")] => {
            (None, "namespaces".to_string(), Some(own(n)), Some(own(s)))
        }
        ["namespaces", ns, r] => (Some(own(ns)), own(r), None, None),
        ["namespaces", ns, r, n] => (Some(own(ns)), own(r), Some(own(n)), None),
        ["namespaces", ns, r, n, s] => (Some(own(ns)), own(r), Some(own(n)), Some(own(s))),
        [r] => (None, own(r), None, None),
        [r, n] => (None, own(r), Some(own(n)), None),
        [r, n, s] => (None, own(r), Some(own(n)), Some(own(s))),
        _ => return Route::NotFound,
    };
    Route::Resource(ResourcePath { group, version, namespace, plural, name, sub })
}

/// The Kubernetes verb of a request (for the request log).
pub fn classify(method: &Method, path: &str, query: &str, content_type: &str) -> String {
    let Route::Resource(rp) = parse_route(path) else { return "other".to_string() };
    let watch = crate::util::parse_query(query)
        .iter()
        .any(|(k, v)| k == "watch" && (v == "1" || v == "true"));
    let collection = rp.name.is_none();
    match *method {
        Method::GET if collection && watch => "watch",
        Method::GET if collection => "list",
        Method::GET => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH if content_type.starts_with("application/apply-patch") => "apply",
        Method::PATCH => "patch",
        Method::DELETE if collection => "deletecollection",
        Method::DELETE => "delete",
        _ => "other",
    }
    .to_string()
}

/// Middleware: records every request and applies the matching fault, if any.
pub async fn faults_layer(
    AxState(shared): AxState<Arc<Shared>>,
    req: Request,
    next: Next,
) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let content_type = header_str(req.headers(), header::CONTENT_TYPE.as_str());
    let verb = classify(&method, &path, &query, &content_type);
    let action = {
        let mut f = shared.faults();
        f.log.push(RequestRecord {
            method: method.to_string(),
            path: path.clone(),
            query,
            verb: verb.clone(),
        });
        let hit = f.rules.iter_mut().find(|r| r.matches(method.as_str(), &verb, &path));
        hit.map(|r| {
            if let Some(n) = r.remaining.as_mut() {
                *n -= 1;
            }
            r.action.clone()
        })
    };
    match action {
        Some(FaultAction::Respond(err)) => err.into_response(),
        Some(FaultAction::Forbid { user }) => {
            let (group, plural, name, ns) = match parse_route(&path) {
                Route::Resource(rp) => (rp.group, rp.plural, rp.name, rp.namespace),
                _ => (String::new(), String::new(), None, None),
            };
            let verb = if verb == "apply" { "patch".to_string() } else { verb };
            ApiError::rbac_forbidden(&user, &verb, &group, &plural, name.as_deref(), ns.as_deref())
                .into_response()
        }
        Some(FaultAction::Delay(d)) => {
            tokio::time::sleep(d).await;
            next.run(req).await
        }
        None => next.run(req).await,
    }
}

fn header_str(headers: &HeaderMap, name: &str) -> String {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
}

struct Ctx {
    method: Method,
    query: HashMap<String, String>,
    accept: String,
    content_type: String,
    user_agent: String,
    body: Bytes,
    user: Option<Arc<crate::rbac::User>>,
}

impl Ctx {
    fn q(&self, key: &str) -> Option<&str> {
        self.query.get(key).map(String::as_str).filter(|v| !v.is_empty())
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.q(key), Some("1" | "true" | "True"))
    }

    fn table(&self) -> Option<String> {
        self.accept
            .contains("as=Table")
            .then(|| self.q("includeObject").unwrap_or("Metadata").to_string())
    }

    fn manager(&self) -> String {
        match self.q("fieldManager") {
            Some(m) => m.to_string(),
            None => {
                let ua = self.user_agent.split('/').next().unwrap_or_default();
                if ua.is_empty() { "unknown".to_string() } else { ua.chars().take(128).collect() }
            }
        }
    }

    fn write_opts(&self, sub: Option<&str>) -> WriteOpts {
        WriteOpts {
            manager: self.manager(),
            dry_run: self.q("dryRun").is_some(),
            subresource: sub.map(str::to_string),
            keep_status: false,
            user: self.user.clone(),
            skip_admission: false,
        }
    }

    fn body_value(&self) -> Result<Value, ApiError> {
        if self.body.is_empty() {
            return Ok(Value::Null);
        }
        if self.content_type.contains("protobuf") {
            return crate::protobuf::decode(&self.body)
                .ok_or_else(|| ApiError::unsupported_body(&self.content_type));
        }
        if self.content_type.contains("cbor") {
            return Err(ApiError::unsupported_body(&self.content_type));
        }
        if let Ok(v) = serde_json::from_slice::<Value>(&self.body) {
            return Ok(v);
        }
        let text = std::str::from_utf8(&self.body)
            .map_err(|_| ApiError::bad_request("the request body is not UTF-8"))?;
        serde_saphyr::from_str::<Value>(text)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
    }
}

/// The fallback handler: everything the router does not route elsewhere.
pub async fn handle(AxState(shared): AxState<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, 256 * 1024 * 1024).await {
        Ok(b) => b,
        Err(_) => return ApiError::bad_request("could not read the request body").into_response(),
    };
    let ctx = Ctx {
        method: parts.method.clone(),
        query: crate::util::parse_query(parts.uri.query().unwrap_or_default())
            .into_iter()
            .collect(),
        accept: header_str(&parts.headers, header::ACCEPT.as_str()),
        content_type: header_str(&parts.headers, header::CONTENT_TYPE.as_str()),
        user_agent: header_str(&parts.headers, header::USER_AGENT.as_str()),
        body,
        user: shared.user(),
    };
    match route(&shared, parts.uri.path(), ctx).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn route(shared: &Arc<Shared>, path: &str, ctx: Ctx) -> Result<Response, ApiError> {
    let r = parse_route(path);
    if !matches!(r, Route::Resource(_)) && ctx.method != Method::GET {
        return Err(ApiError::method_not_allowed());
    }
    let defs = || shared.state().defs.clone();
    match r {
        Route::Version => Ok(ok(&discovery::version())),
        Route::Health => {
            Ok((StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], "ok").into_response())
        }
        Route::Api => Ok(ok(&discovery::api_versions(&shared.addr.to_string()))),
        Route::Apis => Ok(ok(&discovery::api_group_list(&defs()))),
        Route::Group(g) => {
            discovery::api_group(&defs(), &g).map(|v| ok(&v)).ok_or_else(ApiError::path_not_found)
        }
        Route::GroupVersion(g, v) => discovery::resource_list(&defs(), &g, &v)
            .map(|v| ok(&v))
            .ok_or_else(ApiError::path_not_found),
        Route::OpenApiV3Index => Ok(ok(&discovery::openapi_v3_index(&defs()))),
        Route::OpenApiV3Doc(p) => discovery::openapi_v3_doc(&defs(), &p)
            .map(|v| ok(&v))
            .ok_or_else(ApiError::path_not_found),
        Route::NotFound => Err(ApiError::path_not_found()),
        Route::Resource(rp) => resource(shared, rp, ctx).await,
    }
}

fn list_metadata(rv: u64) -> Value {
    json!({"resourceVersion": rv.to_string()})
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<String> {
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect();
    String::from_utf8(bytes?).ok()
}

/// An object as served at `def`'s version.
fn served(def: &ResourceDef, obj: &Value) -> Value {
    let mut o = obj.clone();
    o["apiVersion"] = json!(def.api_version());
    // Custom resources are pruned and defaulted on read too, so a schema change (a new
    // default, a dropped field) shows on objects stored before it, as on a real server.
    if let Some(schema) = def.crd.as_ref().and_then(|c| c.schema.as_ref()) {
        crate::schema::prune(schema, &mut o);
        crate::schema::apply_defaults(schema, &mut o);
    }
    o
}

/// The fields of a custom resource body its schema does not declare, by `fieldValidation`:
/// `Strict` refuses them (400), `Ignore` drops them silently, `Warn` (the default) drops
/// them with one `Warning` header each, returned here. For merge, strategic and JSON
/// patches `Strict` is treated as `Warn` (the real server words that refusal around the
/// whole patched object).
/// Also returns, for CRD writes, the real server's `unrecognized format` warnings.
fn unknown_fields(
    def: &ResourceDef,
    ctx: &Ctx,
    body: &Value,
    strict_allowed: bool,
) -> Result<Vec<String>, ApiError> {
    if def.group == "apiextensions.k8s.io" && def.plural == "customresourcedefinitions" {
        let formats = crate::schema::unrecognized_formats(body);
        return Ok(formats.iter().map(|f| format!("unrecognized format {}", json!(f))).collect());
    }
    let Some(schema) = def.crd.as_ref().and_then(|c| c.schema.as_ref()) else {
        return Ok(Vec::new());
    };
    let mode = ctx.q("fieldValidation").unwrap_or("Warn");
    if mode == "Ignore" || !body.is_object() {
        return Ok(Vec::new());
    }
    let mut unknown = crate::schema::prune(schema, &mut body.clone());
    unknown.sort();
    if mode == "Strict" && strict_allowed && !unknown.is_empty() {
        return Err(ApiError::strict_decoding(def, &unknown));
    }
    Ok(unknown.iter().map(|f| format!("unknown field {}", json!(f))).collect())
}

/// Adds one `Warning: 299 - "..."` header per message.
fn with_warnings(mut resp: Response, warnings: &[String]) -> Response {
    for warning in warnings {
        let text = format!("299 - {}", json!(warning));
        if let Ok(v) = axum::http::HeaderValue::from_str(&text) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}

fn list_item(def: &ResourceDef, obj: &Value) -> Value {
    let mut o = served(def, obj);
    if let Some(m) = o.as_object_mut().filter(|_| !def.from_crd) {
        m.remove("kind");
        m.remove("apiVersion");
    }
    o
}

fn selectors(ctx: &Ctx) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = LabelSelector::parse(ctx.q("labelSelector").unwrap_or_default())
        .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
    let fields = FieldSelector::parse(ctx.q("fieldSelector").unwrap_or_default())
        .map_err(ApiError::bad_request)?;
    Ok((labels, fields))
}

async fn resource(shared: &Arc<Shared>, rp: ResourcePath, ctx: Ctx) -> Result<Response, ApiError> {
    let def = shared
        .state()
        .find_def(&rp.group, &rp.version, &rp.plural)
        .ok_or_else(ApiError::path_not_found)?;
    if !def.namespaced && rp.namespace.is_some() {
        return Err(ApiError::path_not_found());
    }
    if def.namespaced && rp.namespace.is_none() && rp.name.is_some() {
        return Err(ApiError::path_not_found());
    }
    let ns = rp.namespace.clone().unwrap_or_default();
    let sub = rp.sub.as_deref();
    if sub.is_some_and(|s| !def.subresources.iter().any(|x| x == s)) {
        return Err(ApiError::path_not_found());
    }
    if let Some(user) = &ctx.user {
        let attrs = request_attributes(&rp, &ctx);
        if !user.can(&attrs) {
            return Err(user.forbidden(&attrs));
        }
    }
    match (&ctx.method, rp.name.as_deref(), sub) {
        (&Method::GET, None, _) if ctx.flag("watch") => watch(shared, def, rp.namespace, &ctx),
        (&Method::GET, None, _) => list(shared, &def, rp.namespace.as_deref(), &ctx),
        (&Method::GET, Some(name), Some("log")) => pod_log(shared, &def, &ns, name, &ctx),
        (&Method::GET, Some(name), Some("scale")) => {
            let st = shared.state();
            let obj = st.get(&def, &ns, name).ok_or_else(|| ApiError::not_found(&def, name))?;
            Ok(ok(&scale_of(&def, obj)))
        }
        (&Method::GET, Some(name), _) => {
            let st = shared.state();
            let obj = st.get(&def, &ns, name).ok_or_else(|| ApiError::not_found(&def, name))?;
            Ok(match ctx.table() {
                Some(include) => ok(&table::table(
                    &def,
                    &[served(&def, obj)],
                    json!({"resourceVersion": st.resource_version().to_string()}),
                    &include,
                )),
                None => ok(&served(&def, obj)),
            })
        }
        (&Method::POST, None, _) if def.plural == "selfsubjectrulesreviews" => {
            let review = rules_review(shared, ctx.body_value()?);
            Ok(json_response(StatusCode::CREATED, &review))
        }
        (&Method::POST, None, _) if def.plural == "selfsubjectreviews" => {
            let review = self_review(shared, ctx.body_value()?);
            Ok(json_response(StatusCode::CREATED, &review))
        }
        (&Method::POST, None, _) if def.create_only => {
            let review = access_review(shared, ctx.body_value()?);
            Ok(json_response(StatusCode::CREATED, &review))
        }
        (_, _, _) if def.create_only => Err(ApiError::method_not_allowed()),
        (&Method::POST, None, _) => {
            let body = ctx.body_value()?;
            let unknown = unknown_fields(&def, &ctx, &body, true)?;
            let out = shared.state().create(&def, &ns, body, &ctx.write_opts(None))?;
            Ok(with_warnings(json_response(StatusCode::CREATED, &served(&def, &out)), &unknown))
        }
        (&Method::PUT | &Method::PATCH, Some(name), Some("scale")) => {
            scale_write(shared, &def, &ns, name, &ctx)
        }
        (&Method::PUT, Some(name), sub) => {
            let body = ctx.body_value()?;
            let unknown = unknown_fields(&def, &ctx, &body, true)?;
            let out = shared.state().update(&def, &ns, name, body, &ctx.write_opts(sub))?;
            Ok(with_warnings(ok(&served(&def, &out)), &unknown))
        }
        (&Method::PATCH, Some(name), sub) => {
            let kind = patch_kind(&ctx)?;
            let body = ctx.body_value()?;
            // Apply bodies with undeclared fields are refused by the typed conversion.
            let unknown = match kind {
                PatchKind::Merge | PatchKind::Strategic => {
                    unknown_fields(&def, &ctx, &body, false)?
                }
                // Apply bodies of custom resources are checked by the typed conversion;
                // for CRDs this yields the format warnings.
                PatchKind::Apply { .. } if def.crd.is_none() => {
                    unknown_fields(&def, &ctx, &body, false)?
                }
                _ => Vec::new(),
            };
            let (out, created) =
                shared.state().patch(&def, &ns, name, kind, &body, &ctx.write_opts(sub))?;
            let code = if created { StatusCode::CREATED } else { StatusCode::OK };
            Ok(with_warnings(json_response(code, &served(&def, &out)), &unknown))
        }
        (&Method::DELETE, Some(name), None) => {
            let opts = delete_opts(&ctx)?;
            let out = shared.state().delete(&def, &ns, name, &opts)?;
            Ok(ok(&served(&def, &out)))
        }
        (&Method::DELETE, None, None) => {
            let opts = delete_opts(&ctx)?;
            let (labels, fields) = selectors(&ctx)?;
            let mut st = shared.state();
            let names: Vec<(String, String)> = st
                .list(&def, rp.namespace.as_deref())
                .into_iter()
                .filter(|o| labels.matches(o) && fields.matches(o))
                .map(|o| {
                    let m = &o["metadata"];
                    (
                        m["namespace"].as_str().unwrap_or_default().to_string(),
                        m["name"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect();
            let mut items = Vec::new();
            for (ons, oname) in names {
                if let Ok(o) = st.delete(&def, &ons, &oname, &opts) {
                    items.push(list_item(&def, &o));
                }
            }
            let rv = st.resource_version();
            Ok(ok(
                &json!({"kind": format!("{}List", def.kind), "apiVersion": def.api_version(), "metadata": list_metadata(rv), "items": items}),
            ))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// What the authorizer sees of a resource request.
fn request_attributes(rp: &ResourcePath, ctx: &Ctx) -> crate::rbac::Attributes {
    let verb = match (&ctx.method, rp.name.is_some()) {
        (&Method::GET, false) if ctx.flag("watch") => "watch",
        (&Method::GET, false) => "list",
        (&Method::GET, true) => "get",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, false) => "deletecollection",
        (&Method::DELETE, true) => "delete",
        _ => "get",
    };
    let mut namespace = rp.namespace.clone().unwrap_or_default();
    if rp.group.is_empty() && rp.plural == "namespaces" {
        namespace = rp.name.clone().unwrap_or_default();
    }
    crate::rbac::Attributes {
        verb: verb.to_string(),
        group: rp.group.clone(),
        resource: rp.plural.clone(),
        subresource: rp.sub.clone(),
        name: rp.name.clone(),
        namespace,
        path: None,
    }
}

/// Answers a SelfSubjectAccessReview: denied when an injected 403 fault would refuse the
/// request the review describes, allowed otherwise.
fn access_review(shared: &Arc<Shared>, mut review: Value) -> Value {
    let attrs = &review["spec"]["resourceAttributes"];
    let text = |k: &str| attrs[k].as_str().unwrap_or_default().to_string();
    let (verb, group, resource, ns, name) =
        (text("verb"), text("group"), text("resource"), text("namespace"), text("name"));
    let version = {
        let st = shared.state();
        st.defs.iter().find(|d| d.group == group && d.plural == resource).map(|d| d.version.clone())
    }
    .unwrap_or_else(|| "v1".to_string());
    let mut path = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    if !ns.is_empty() {
        path.push_str(&format!("/namespaces/{ns}"));
    }
    path.push_str(&format!("/{resource}"));
    if !name.is_empty() {
        path.push_str(&format!("/{name}"));
    }
    let method = match verb.as_str() {
        "create" => "POST",
        "update" => "PUT",
        "patch" => "PATCH",
        "delete" | "deletecollection" => "DELETE",
        _ => "GET",
    };
    let denied = attrs.is_object()
        && shared.faults().rules.iter().any(|r| {
            let forbids = match &r.action {
                FaultAction::Forbid { .. } => true,
                FaultAction::Respond(e) => e.code == 403,
                FaultAction::Delay(_) => false,
            };
            forbids && r.matches(method, &verb, &path)
        });
    let denied = match shared.user() {
        Some(user) => {
            let non = &review["spec"]["nonResourceAttributes"];
            let a = if non.is_object() {
                crate::rbac::Attributes {
                    verb: non["verb"].as_str().unwrap_or_default().to_string(),
                    path: Some(non["path"].as_str().unwrap_or_default().to_string()),
                    ..Default::default()
                }
            } else {
                let sub = attrs["subresource"].as_str().filter(|s| !s.is_empty());
                crate::rbac::Attributes {
                    verb: verb.clone(),
                    group: group.clone(),
                    resource: resource.clone(),
                    subresource: sub.map(str::to_string),
                    name: (!name.is_empty()).then(|| name.clone()),
                    namespace: ns.clone(),
                    path: None,
                }
            };
            denied || !user.can(&a)
        }
        None => denied,
    };
    review["apiVersion"] = json!("authorization.k8s.io/v1");
    review["kind"] = json!("SelfSubjectAccessReview");
    if review["metadata"].is_null() {
        review["metadata"] = json!({});
    }
    review["metadata"]["creationTimestamp"] = Value::Null;
    review["status"] = if denied { json!({"allowed": false}) } else { json!({"allowed": true}) };
    review
}

/// Answers a SelfSubjectReview: who the request is from (without a user, the token user the
/// fake's kubeconfig carries, a cluster admin).
fn self_review(shared: &Arc<Shared>, mut review: Value) -> Value {
    let (name, groups) = match shared.user() {
        Some(user) => (user.name.clone(), user.groups.clone()),
        None => (
            "fakekube-user".to_string(),
            vec!["system:masters".to_string(), "system:authenticated".to_string()],
        ),
    };
    review["apiVersion"] = json!("authentication.k8s.io/v1");
    review["kind"] = json!("SelfSubjectReview");
    review["metadata"] = json!({"creationTimestamp": null});
    review["status"] = json!({"userInfo": {"username": name, "groups": groups}});
    review
}

/// Answers a SelfSubjectRulesReview for `spec.namespace`.
fn rules_review(shared: &Arc<Shared>, mut review: Value) -> Value {
    let ns = review["spec"]["namespace"].as_str().unwrap_or_default().to_string();
    let user = shared.user();
    review["apiVersion"] = json!("authorization.k8s.io/v1");
    review["kind"] = json!("SelfSubjectRulesReview");
    if review["metadata"].is_null() {
        review["metadata"] = json!({});
    }
    review["metadata"]["creationTimestamp"] = Value::Null;
    review["status"] = crate::rbac::rules_review_status(user.as_deref(), &ns);
    review
}

fn patch_kind(ctx: &Ctx) -> Result<PatchKind, ApiError> {
    let ct = ctx.content_type.split(';').next().unwrap_or_default().trim();
    Ok(match ct {
        "application/merge-patch+json" => PatchKind::Merge,
        "application/strategic-merge-patch+json" => PatchKind::Strategic,
        "application/json-patch+json" => PatchKind::Json,
        "application/apply-patch+yaml"
        | "application/apply-patch+json"
        | "application/apply-patch+cbor" => {
            if ctx.q("fieldManager").is_none() {
                return Err(ApiError::bad_request(
                    "PATCH request must have fieldManager set for apply patches",
                ));
            }
            PatchKind::Apply { force: ctx.flag("force") }
        }
        other => return Err(ApiError::unsupported_media(other)),
    })
}

fn delete_opts(ctx: &Ctx) -> Result<DeleteOpts, ApiError> {
    let body = ctx.body_value().unwrap_or(Value::Null);
    let policy = ctx
        .q("propagationPolicy")
        .map(str::to_string)
        .or_else(|| body["propagationPolicy"].as_str().map(str::to_string));
    let orphan = policy.as_deref() == Some("Orphan") || body["orphanDependents"] == true;
    let dry_run =
        ctx.q("dryRun").is_some() || body["dryRun"].as_array().is_some_and(|a| !a.is_empty());
    Ok(DeleteOpts {
        orphan,
        dry_run,
        precondition_rv: body["preconditions"]["resourceVersion"].as_str().map(str::to_string),
        precondition_uid: body["preconditions"]["uid"].as_str().map(str::to_string),
        grace_period_seconds: ctx
            .q("gracePeriodSeconds")
            .and_then(|g| g.parse::<i64>().ok())
            .or_else(|| body["gracePeriodSeconds"].as_i64()),
    })
}

fn list(
    shared: &Arc<Shared>,
    def: &ResourceDef,
    ns: Option<&str>,
    ctx: &Ctx,
) -> Result<Response, ApiError> {
    let (labels, fields) = selectors(ctx)?;
    let st = shared.state();
    let rv = st.resource_version();
    let after = ctx.q("continue").and_then(unhex);
    let limit = ctx.q("limit").and_then(|l| l.parse::<usize>().ok()).filter(|l| *l > 0);
    let key = |o: &Value| {
        format!(
            "{}/{}",
            o["metadata"]["namespace"].as_str().unwrap_or_default(),
            o["metadata"]["name"].as_str().unwrap_or_default()
        )
    };
    let matching: Vec<&Value> = st
        .list(def, ns)
        .into_iter()
        .filter(|o| after.as_ref().is_none_or(|a| key(o).as_str() > a.as_str()))
        .filter(|o| labels.matches(o) && fields.matches(o))
        .collect();
    let mut metadata = list_metadata(rv);
    let page: Vec<&Value> = match limit {
        Some(l) if matching.len() > l => {
            metadata["continue"] = json!(hex(&key(matching[l - 1])));
            metadata["remainingItemCount"] = json!(matching.len() - l);
            matching[..l].to_vec()
        }
        _ => matching,
    };
    if let Some(include) = ctx.table() {
        let objs: Vec<Value> = page.iter().map(|o| served(def, o)).collect();
        return Ok(ok(&table::table(def, &objs, metadata, &include)));
    }
    let items: Vec<Value> = page.iter().map(|o| list_item(def, o)).collect();
    Ok(ok(&json!({
        "kind": format!("{}List", def.kind),
        "apiVersion": def.api_version(),
        "metadata": metadata,
        "items": items,
    })))
}

fn pod_log(
    shared: &Arc<Shared>,
    def: &ResourceDef,
    ns: &str,
    name: &str,
    ctx: &Ctx,
) -> Result<Response, ApiError> {
    let st = shared.state();
    let pod = st.get(def, ns, name).ok_or_else(|| ApiError::not_found(def, name))?;
    let lines = st.logs.get(&(ns.to_string(), name.to_string()));
    if lines.is_none() && pod["status"]["phase"] != "Running" {
        let container = ctx
            .q("container")
            .map(str::to_string)
            .or_else(|| pod["spec"]["containers"][0]["name"].as_str().map(str::to_string))
            .unwrap_or_default();
        let reason = pod["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
            .as_str()
            .unwrap_or("ContainerCreating");
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: {reason}"
        )));
    }
    let lines: Vec<String> = lines.cloned().unwrap_or_default();
    let tail = ctx.q("tailLines").and_then(|t| t.parse::<usize>().ok());
    let start = tail.map_or(0, |t| lines.len().saturating_sub(t));
    let mut text = lines[start..].join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], text).into_response())
}

/// The keys of a simple JSONPath such as `.spec.replicas`.
fn path_keys(path: &str) -> Vec<&str> {
    path.trim_start_matches('.').split('.').filter(|k| !k.is_empty()).collect()
}

fn at_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    path_keys(path).into_iter().try_fold(obj, |v, k| v.get(k))
}

/// The Scale of a custom resource, from its CRD's replica and selector paths (the selector
/// only when a `labelSelectorPath` is declared and holds a value, as for real).
fn crd_scale_of(scale: &Value, obj: &Value) -> Value {
    let m = &obj["metadata"];
    let int = |key: &str| {
        scale[key].as_str().and_then(|p| at_path(obj, p)).and_then(Value::as_i64).unwrap_or(0)
    };
    let mut status = json!({"replicas": int("statusReplicasPath")});
    if let Some(sel) = scale["labelSelectorPath"].as_str().and_then(|p| at_path(obj, p)) {
        status["selector"] = sel.clone();
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {"name": m["name"], "namespace": m["namespace"], "uid": m["uid"], "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"]},
        "spec": {"replicas": int("specReplicasPath")},
        "status": status,
    })
}

fn scale_of(def: &ResourceDef, obj: &Value) -> Value {
    if let Some(scale) = def.crd.as_ref().and_then(|c| c.scale.as_ref()) {
        return crd_scale_of(scale, obj);
    }
    let m = &obj["metadata"];
    let selector: Vec<String> = obj["spec"]["selector"]["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {"name": m["name"], "namespace": m["namespace"], "uid": m["uid"], "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"]},
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(0)},
        "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector.join(",")},
    })
}

fn scale_write(
    shared: &Arc<Shared>,
    def: &ResourceDef,
    ns: &str,
    name: &str,
    ctx: &Ctx,
) -> Result<Response, ApiError> {
    let body = ctx.body_value()?;
    let mut st = shared.state();
    let obj = st.get(def, ns, name).cloned().ok_or_else(|| ApiError::not_found(def, name))?;
    let mut scale = scale_of(def, &obj);
    if ctx.method == Method::PUT {
        scale = body;
    } else {
        match patch_kind(ctx)? {
            PatchKind::Json => {
                crate::fields::json_patch(&mut scale, &body).map_err(ApiError::bad_request)?
            }
            _ => crate::fields::merge_patch(&mut scale, &body),
        }
    }
    let replicas = scale["spec"]["replicas"].as_i64().unwrap_or(0);
    let replicas_path = def
        .crd
        .as_ref()
        .and_then(|c| c.scale.as_ref())
        .and_then(|s| s["specReplicasPath"].as_str())
        .unwrap_or(".spec.replicas");
    let patch =
        path_keys(replicas_path).into_iter().rev().fold(json!(replicas), |v, k| json!({ k: v }));
    let opts = WriteOpts { subresource: None, ..ctx.write_opts(None) };
    let (out, _) = st.patch(def, ns, name, PatchKind::Merge, &patch, &opts)?;
    Ok(ok(&scale_of(def, &out)))
}

struct WatchStream {
    shared: Arc<Shared>,
    def: ResourceDef,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    queue: VecDeque<Bytes>,
    rx: broadcast::Receiver<Arc<WatchEvent>>,
    drop_rx: watch::Receiver<u64>,
    deadline: Instant,
    bookmarks: bool,
    ticker: tokio::time::Interval,
    table: Option<String>,
    done: bool,
}

impl WatchStream {
    fn line(&self, kind: &str, obj: &Value) -> Bytes {
        let object = match &self.table {
            Some(include) if kind != "ERROR" && kind != "BOOKMARK" => table::table(
                &self.def,
                &[served(&self.def, obj)],
                json!({"resourceVersion": obj["metadata"]["resourceVersion"]}),
                include,
            ),
            _ if kind == "ERROR" => obj.clone(),
            _ => served(&self.def, obj),
        };
        let mut bytes =
            serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
        bytes.push(b'\n');
        Bytes::from(bytes)
    }

    /// The event type this watch sends for `ev`, if any: a change that makes an object start
    /// (stop) matching the selectors is sent as ADDED (DELETED), as the real server does.
    fn wants(&self, ev: &WatchEvent) -> Option<&'static str> {
        if ev.key != self.def.store_key()
            || self.namespace.as_deref().is_some_and(|ns| ns != ev.namespace)
        {
            return None;
        }
        let matches = |o: &Value| self.labels.matches(o) && self.fields.matches(o);
        let now = matches(&ev.object);
        match (&ev.previous, now) {
            (Some(prev), true) if !matches(prev) => Some("ADDED"),
            (Some(prev), false) if matches(prev) => Some("DELETED"),
            (_, true) => Some(ev.kind),
            (_, false) => None,
        }
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        self.line(
            "BOOKMARK",
            &json!({"kind": self.def.kind, "apiVersion": self.def.api_version(), "metadata": meta}),
        )
    }

    async fn next_line(&mut self) -> Option<Bytes> {
        if let Some(b) = self.queue.pop_front() {
            return Some(b);
        }
        if self.done {
            return None;
        }
        loop {
            if self.drop_rx.has_changed().unwrap_or(true) {
                return None;
            }
            tokio::select! {
                biased;
                _ = self.drop_rx.changed() => return None,
                _ = tokio::time::sleep_until(self.deadline) => return None,
                r = self.rx.recv() => match r {
                    Ok(ev) => {
                        if let Some(kind) = self.wants(&ev) {
                            return Some(self.line(kind, &ev.object));
                        }
                    }
                    Err(_) => return None,
                },
                _ = self.ticker.tick(), if self.bookmarks => {
                    let rv = self.shared.state().resource_version();
                    return Some(self.bookmark(rv, false));
                }
            }
        }
    }
}

fn watch(
    shared: &Arc<Shared>,
    def: ResourceDef,
    namespace: Option<String>,
    ctx: &Ctx,
) -> Result<Response, ApiError> {
    let (labels, fields) = selectors(ctx)?;
    let timeout = ctx.q("timeoutSeconds").and_then(|t| t.parse::<u64>().ok());
    let deadline =
        Instant::now() + timeout.map_or(Duration::from_secs(365 * 86_400), Duration::from_secs);
    let bookmarks = ctx.flag("allowWatchBookmarks") && ctx.table().is_none();
    let st = shared.state();
    let interval = st.settings.bookmark_interval.max(Duration::from_millis(10));
    let mut ticker = tokio::time::interval_at(Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ws = WatchStream {
        shared: shared.clone(),
        def: def.clone(),
        namespace,
        labels,
        fields,
        queue: VecDeque::new(),
        rx: st.subscribe(),
        drop_rx: shared.watch_drop.subscribe(),
        deadline,
        bookmarks,
        ticker,
        table: ctx.table(),
        done: false,
    };
    let rv_param = ctx.q("resourceVersion").unwrap_or("0");
    let initial = ctx.flag("sendInitialEvents") || rv_param == "0";
    if initial {
        let objs: Vec<Value> = st
            .list(&def, ws.namespace.as_deref())
            .into_iter()
            .filter(|o| ws.labels.matches(o) && ws.fields.matches(o))
            .cloned()
            .collect();
        for o in objs {
            let line = ws.line("ADDED", &o);
            ws.queue.push_back(line);
        }
        if ctx.flag("sendInitialEvents") && ctx.flag("allowWatchBookmarks") {
            let line = ws.bookmark(st.resource_version(), true);
            ws.queue.push_back(line);
        }
    } else {
        let rv: u64 = rv_param.parse().map_err(|_| {
            ApiError::bad_request(format!("resourceVersion: Invalid value: \"{rv_param}\""))
        })?;
        match st.events_since(rv) {
            Ok(events) => {
                let lines: Vec<Bytes> = events
                    .iter()
                    .filter_map(|ev| ws.wants(ev).map(|kind| ws.line(kind, &ev.object)))
                    .collect();
                ws.queue.extend(lines);
            }
            Err(oldest) => {
                let err = ApiError::expired(rv, oldest);
                let line = ws.line("ERROR", &err.body);
                ws.queue.push_back(line);
                ws.done = true;
            }
        }
    }
    drop(st);
    let stream = futures::stream::unfold(ws, |mut ws| async move {
        let line = ws.next_line().await?;
        Some((Ok::<Bytes, std::io::Error>(line), ws))
    });
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_parsed() {
        assert_eq!(parse_route("/version"), Route::Version);
        let Route::Resource(rp) = parse_route("/apis/apps/v1/namespaces/ns/statefulsets/a/status")
        else {
            panic!()
        };
        assert_eq!(
            (rp.namespace.as_deref(), rp.plural.as_str(), rp.name.as_deref(), rp.sub.as_deref()),
            (Some("ns"), "statefulsets", Some("a"), Some("status"))
        );
        let Route::Resource(rp) = parse_route("/api/v1/namespaces/x/status") else { panic!() };
        assert_eq!(
            (rp.namespace, rp.plural.as_str(), rp.name.as_deref()),
            (None, "namespaces", Some("x"))
        );
        let Route::Resource(rp) = parse_route("/api/v1/pods") else { panic!() };
        assert_eq!((rp.namespace, rp.name), (None, None));
    }
}
