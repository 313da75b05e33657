//! `Status` error bodies shaped like the real API server's, and the error type handlers return.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::registry::ResourceDef;

/// An API error: an HTTP code and the `Status` object sent as the body.
#[derive(Clone, Debug)]
pub struct ApiError {
    pub code: u16,
    pub body: Value,
}

impl ApiError {
    /// A failure `Status` with the given reason, message and optional details.
    pub fn new(
        code: u16,
        reason: &str,
        message: impl Into<String>,
        details: Option<Value>,
    ) -> Self {
        let mut body = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message.into(),
            "reason": reason,
        });
        if let Some(d) = details {
            body["details"] = d;
        }
        body["code"] = json!(code);
        ApiError { code, body }
    }

    pub fn not_found(def: &ResourceDef, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{}\" not found", def.group_resource(), name),
            Some(details(def, name)),
        )
    }

    pub fn namespace_not_found(ns: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("namespaces \"{ns}\" not found"),
            Some(json!({"name": ns, "kind": "namespaces"})),
        )
    }

    pub fn already_exists(def: &ResourceDef, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{}\" already exists", def.group_resource(), name),
            Some(details(def, name)),
        )
    }

    pub fn stale(def: &ResourceDef, name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{}\": the object has been modified; \
                 please apply your changes to the latest version and try again",
                def.group_resource(),
                name
            ),
            Some(details(def, name)),
        )
    }

    /// 422 Invalid with one cause per `(field, invalid value, detail)`.
    pub fn invalid(def: &ResourceDef, name: &str, errors: &[FieldError]) -> Self {
        let texts: Vec<String> = errors.iter().map(FieldError::full).collect();
        let summary =
            if texts.len() == 1 { texts[0].clone() } else { format!("[{}]", texts.join(", ")) };
        let causes: Vec<Value> = errors
            .iter()
            .map(|e| json!({"reason": e.reason, "message": e.message(), "field": e.field}))
            .collect();
        let mut d = json!({"name": name});
        if !def.group.is_empty() {
            d["group"] = json!(def.group);
        }
        d["kind"] = json!(def.kind);
        d["causes"] = json!(causes);
        Self::new(
            422,
            "Invalid",
            format!("{} \"{}\" is invalid: {}", def.group_kind(), name, summary),
            Some(d),
        )
    }

    pub fn namespace_terminating(def: &ResourceDef, name: &str, ns: &str) -> Self {
        let mut d = details(def, name);
        d["causes"] = json!([{
            "reason": "NamespaceTerminating",
            "message": format!("namespace {ns} is being terminated"),
            "field": "metadata.namespace",
        }]);
        Self::new(
            403,
            "Forbidden",
            format!(
                "{} \"{}\" is forbidden: unable to create new content in namespace {} because it is being terminated",
                def.group_resource(),
                name,
                ns
            ),
            Some(d),
        )
    }

    /// The RBAC denial body for `user` doing `verb` on a resource.
    pub fn rbac_forbidden(
        user: &str,
        verb: &str,
        group: &str,
        plural: &str,
        name: Option<&str>,
        namespace: Option<&str>,
    ) -> Self {
        Self::rbac_forbidden_sub(user, verb, group, plural, None, name, namespace)
    }

    /// The RBAC denial body, with a subresource (`pods/log`) in the message.
    pub fn rbac_forbidden_sub(
        user: &str,
        verb: &str,
        group: &str,
        plural: &str,
        sub: Option<&str>,
        name: Option<&str>,
        namespace: Option<&str>,
    ) -> Self {
        let gr = if group.is_empty() { plural.to_string() } else { format!("{plural}.{group}") };
        let subject = match name {
            Some(n) => format!("{gr} \"{n}\""),
            None => gr,
        };
        let scope = match namespace {
            Some(ns) => format!("in the namespace \"{ns}\""),
            None => "at the cluster scope".to_string(),
        };
        let resource = match sub {
            Some(s) => format!("{plural}/{s}"),
            None => plural.to_string(),
        };
        let mut d = json!({});
        if let Some(n) = name {
            d["name"] = json!(n);
        }
        if !group.is_empty() {
            d["group"] = json!(group);
        }
        d["kind"] = json!(plural);
        Self::new(
            403,
            "Forbidden",
            format!(
                "{subject} is forbidden: User \"{user}\" cannot {verb} resource \"{resource}\" in API group \"{group}\" {scope}"
            ),
            Some(d),
        )
    }

    /// `apierrors.NewForbidden(resource, name, err)` as admission plugins and the RBAC
    /// storage return it: `pods "x" is forbidden: <reason>`.
    pub fn forbidden(def: &ResourceDef, name: &str, reason: &str) -> Self {
        let subject = if name.is_empty() {
            def.group_resource()
        } else {
            format!("{} \"{}\"", def.group_resource(), name)
        };
        Self::new(
            403,
            "Forbidden",
            format!("{subject} is forbidden: {reason}"),
            Some(details(def, name)),
        )
    }

    /// The 500 server-side apply answers when an apply body does not fit a custom
    /// resource's schema (`failed to create typed patch object (ns/name; g/v, Kind=K): ...`).
    pub fn typed_patch(def: &ResourceDef, body: &Value, why: &str) -> Self {
        let m = &body["metadata"];
        let message = format!(
            "failed to create typed patch object ({}/{}; {}, Kind={}): {why}",
            m["namespace"].as_str().unwrap_or_default(),
            m["name"].as_str().unwrap_or_default(),
            def.api_version(),
            def.kind,
        );
        let body = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "code": 500,
        });
        ApiError { code: 500, body }
    }

    /// 400 for fields a schema does not declare, with `fieldValidation=Strict`.
    pub fn strict_decoding(def: &ResourceDef, unknown: &[String]) -> Self {
        let fields: Vec<String> =
            unknown.iter().map(|f| format!("unknown field {}", json!(f))).collect();
        Self::new(
            400,
            "BadRequest",
            format!(
                "{kind} in version {version} cannot be handled as a {kind}: strict decoding error: {}",
                fields.join(", "),
                kind = def.kind,
                version = json!(def.version),
            ),
            None,
        )
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized", None)
    }

    pub fn internal(message: &str) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {message}"),
            Some(json!({"causes": [{"message": message}]})),
        )
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message, None)
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
            None,
        )
    }

    /// 415 for request bodies in encodings the fake does not decode (protobuf, CBOR).
    pub fn unsupported_body(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml; got {content_type}"
            ),
            None,
        )
    }

    pub fn unsupported_media(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml; got {content_type}"
            ),
            None,
        )
    }

    pub fn path_not_found() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
            Some(json!({})),
        )
    }

    /// The 410 Gone `Status` sent in a watch ERROR event for a too-old resourceVersion.
    pub fn expired(requested: u64, oldest: u64) -> Self {
        Self::new(410, "Expired", format!("too old resource version: {requested} ({oldest})"), None)
    }

    /// Server-side apply conflicts: `(manager as described in messages, field path)`.
    pub fn apply_conflict(conflicts: &[(String, String)]) -> Self {
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|(m, f)| {
                json!({"reason": "FieldManagerConflict", "message": format!("conflict with {m}"), "field": f})
            })
            .collect();
        let message = if let [(m, f)] = conflicts {
            format!("Apply failed with 1 conflict: conflict with {m}: {f}")
        } else {
            let mut managers: Vec<&String> = conflicts.iter().map(|(m, _)| m).collect();
            managers.sort();
            managers.dedup();
            let mut lines = Vec::new();
            for m in managers {
                lines.push(format!("conflicts with {m}:"));
                for (_, f) in conflicts.iter().filter(|(cm, _)| cm == m) {
                    lines.push(format!("- {f}"));
                }
            }
            format!("Apply failed with {} conflicts: {}", conflicts.len(), lines.join("\n"))
        };
        Self::new(409, "Conflict", message, Some(json!({"causes": causes})))
    }
}

fn details(def: &ResourceDef, name: &str) -> Value {
    let mut d = json!({"name": name});
    if !def.group.is_empty() {
        d["group"] = json!(def.group);
    }
    d["kind"] = json!(def.plural);
    d
}

/// One field validation error.
#[derive(Clone, Debug)]
pub struct FieldError {
    pub field: String,
    pub reason: &'static str,
    /// The invalid value as Go's validation prints it (`"x"` for strings, `80` for numbers,
    /// `[]string{"a"}` for slices); `None` for Required / Forbidden errors.
    pub value: Option<String>,
    pub detail: String,
}

impl FieldError {
    pub fn invalid(field: &str, value: &str, detail: impl Into<String>) -> Self {
        Self::invalid_raw(field, json!(value).to_string(), detail)
    }

    /// Invalid with the value already rendered (numbers, Go slices).
    pub fn invalid_raw(
        field: &str,
        rendered: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        FieldError {
            field: field.to_string(),
            reason: "FieldValueInvalid",
            value: Some(rendered.into()),
            detail: detail.into(),
        }
    }

    pub fn required(field: &str, detail: impl Into<String>) -> Self {
        FieldError {
            field: field.to_string(),
            reason: "FieldValueRequired",
            value: None,
            detail: detail.into(),
        }
    }

    pub fn forbidden(field: &str, detail: impl Into<String>) -> Self {
        FieldError {
            field: field.to_string(),
            reason: "FieldValueForbidden",
            value: None,
            detail: detail.into(),
        }
    }

    /// `Unsupported value: "x": supported values: "a", "b"`.
    pub fn not_supported(field: &str, value: &str, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| json!(s).to_string()).collect();
        FieldError {
            field: field.to_string(),
            reason: "FieldValueNotSupported",
            value: Some(json!(value).to_string()),
            detail: format!("supported values: {}", list.join(", ")),
        }
    }

    /// The cause message, e.g. `Invalid value: "x": must be ...`.
    pub fn message(&self) -> String {
        match (&self.value, self.reason) {
            (Some(v), "FieldValueNotSupported") => {
                format!("Unsupported value: {v}: {}", self.detail)
            }
            (Some(v), _) => format!("Invalid value: {v}: {}", self.detail),
            (None, "FieldValueRequired") if self.detail.is_empty() => "Required value".into(),
            (None, "FieldValueRequired") => format!("Required value: {}", self.detail),
            (None, "FieldValueForbidden") => format!("Forbidden: {}", self.detail),
            (None, _) => self.detail.clone(),
        }
    }

    /// `field: message`, as in the Status message.
    pub fn full(&self) -> String {
        format!("{}: {}", self.field, self.message())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        crate::api::json_response(code, &self.body)
    }
}
