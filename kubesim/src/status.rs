//! API errors as the real API server reports them: an HTTP status code plus a `v1.Status`
//! body whose `reason`, `message` and `details` follow apimachinery's wording, so that kube-rs
//! (`kube::Error::Api`) and the client code branching on `reason`/`code` see what a real
//! cluster would send.

use serde_json::{Map, Value, json};

/// One field-level problem inside an `Invalid` (422) or SSA `Conflict` (409) error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cause {
    /// apimachinery cause type, e.g. `FieldValueInvalid`, `FieldValueRequired`,
    /// `FieldValueTypeInvalid`, `FieldManagerConflict`.
    pub reason: &'static str,
    /// Human message without the field prefix, e.g. `Required value`.
    pub message: String,
    /// Field path, e.g. `credspec.CmsPlugins` or `metadata.name`.
    pub field: String,
}

impl Cause {
    /// `Invalid value: <value>: <detail>`.
    pub fn invalid(field: impl Into<String>, value: &Value, detail: impl AsRef<str>) -> Self {
        Self {
            reason: "FieldValueInvalid",
            message: format!("Invalid value: {}: {}", value_for_message(value), detail.as_ref()),
            field: field.into(),
        }
    }

    /// `Required value[: detail]`.
    pub fn required(field: impl Into<String>, detail: &str) -> Self {
        let message = if detail.is_empty() { "Required value".to_owned() } else { format!("Required value: {detail}") };
        Self { reason: "FieldValueRequired", message, field: field.into() }
    }

    /// Wrong JSON type under a structural schema, worded like kube-openapi's validator.
    pub fn type_invalid(field: impl Into<String>, value: &Value, expected: &str) -> Self {
        let field = field.into();
        Self {
            reason: "FieldValueTypeInvalid",
            message: format!(
                "Invalid value: {}: {field} in body must be of type {expected}: {}",
                value_for_message(value),
                value_for_message(&Value::String(json_type_name(value).to_owned()))
            ),
            field,
        }
    }

    /// `Unsupported value: <value>: supported values: ...`.
    pub fn not_supported(field: impl Into<String>, value: &Value, supported: &[&str]) -> Self {
        let supported: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
        Self {
            reason: "FieldValueNotSupported",
            message: format!(
                "Unsupported value: {}: supported values: {}",
                value_for_message(value),
                supported.join(", ")
            ),
            field: field.into(),
        }
    }
}

/// The JSON type name kube-openapi uses in its messages.
pub(crate) fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(number) if number.is_i64() || number.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn value_for_message(value: &Value) -> String {
    match value {
        Value::Object(_) => "map[string]interface {}{...}".to_owned(),
        Value::Array(_) => "[]interface {}{...}".to_owned(),
        other => other.to_string(),
    }
}

/// What identifies the object an error is about: `group` empty for the core group,
/// `resource` the plural, `kind` the Kind.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Subject {
    pub group: String,
    pub resource: String,
    pub kind: String,
    pub name: String,
}

impl Subject {
    /// `configmaps` or `gmsacredentialspecs.windows.k8s.io`.
    fn qualified_resource(&self) -> String {
        if self.group.is_empty() { self.resource.clone() } else { format!("{}.{}", self.resource, self.group) }
    }

    /// `ConfigMap` or `GMSACredentialSpec.windows.k8s.io`.
    fn qualified_kind(&self) -> String {
        if self.group.is_empty() { self.kind.clone() } else { format!("{}.{}", self.kind, self.group) }
    }
}

/// A failed API request, rendered as `v1.Status` by [`ApiError::status_body`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ApiError {
    /// 404: the named object does not exist.
    #[error("{} \"{}\" not found", .0.qualified_resource(), .0.name)]
    NotFound(Subject),
    /// 404: the path names no resource this server serves.
    #[error("the server could not find the requested resource")]
    NoSuchResource,
    /// 409: create of an object whose name is taken.
    #[error("{} \"{}\" already exists", .0.qualified_resource(), .0.name)]
    AlreadyExists(Subject),
    /// 409: a precondition (resourceVersion, uid) did not hold.
    #[error("Operation cannot be fulfilled on {} \"{}\": {detail}", .subject.qualified_resource(), .subject.name)]
    Conflict { subject: Subject, detail: String },
    /// 409: server-side apply found fields owned by other managers with other values.
    #[error("Apply failed with {} conflict{}: {}", .causes.len(), if .causes.len() == 1 { "" } else { "s" },
        .causes.iter().map(|c| format!("{}: {}", c.message, c.field)).collect::<Vec<_>>().join("\n"))]
    ApplyConflict { subject: Subject, causes: Vec<Cause> },
    /// 422: the object fails validation.
    #[error("{} \"{}\" is invalid: {}", .subject.qualified_kind(), .subject.name, render_causes(.causes))]
    Invalid { subject: Subject, causes: Vec<Cause> },
    /// 400: the request cannot be decoded or is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 401: missing or wrong bearer token.
    #[error("Unauthorized")]
    Unauthorized,
    /// 403: the authorizer refused the request (or an impersonation it asks for).
    #[error("{}", forbidden_text(.subject, .message))]
    Forbidden { subject: Subject, message: String },
    /// 403 (or the webhook's code): an admission webhook refused the object; worded by the
    /// apiserver as `admission webhook "<name>" denied the request: <message>`, with no reason.
    #[error("admission webhook {webhook:?} denied the request: {message}")]
    AdmissionDenied { webhook: String, code: u16, message: String },
    /// 500: a request the server cannot serve.
    #[error("Internal error occurred: {0}")]
    InternalError(String),
    /// 405: the verb is not served for this resource.
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    /// 415: PATCH with a content type the resource does not accept.
    #[error("the body of the request was in an unknown format - accepted media types include: {0}")]
    UnsupportedMediaType(String),
    /// 410: a resourceVersion older than the retained history.
    #[error("too old resource version: {requested} ({oldest})")]
    Expired { requested: u64, oldest: u64 },
}

/// `NewForbidden`'s message: `<resource> "<name>" is forbidden: …`, without name or resource
/// when the request had none.
fn forbidden_text(subject: &Subject, message: &str) -> String {
    if subject.resource.is_empty() {
        format!("forbidden: {message}")
    } else if subject.name.is_empty() {
        format!("{} is forbidden: {message}", subject.qualified_resource())
    } else {
        format!("{} {:?} is forbidden: {message}", subject.qualified_resource(), subject.name)
    }
}

fn render_causes(causes: &[Cause]) -> String {
    let rendered: Vec<String> =
        causes
            .iter()
            .map(|cause| {
                if cause.field.is_empty() {
                    cause.message.clone()
                } else {
                    format!("{}: {}", cause.field, cause.message)
                }
            })
            .collect();
    if rendered.len() == 1 { rendered[0].clone() } else { format!("[{}]", rendered.join(", ")) }
}

impl ApiError {
    /// HTTP status code.
    pub fn code(&self) -> u16 {
        match self {
            Self::NotFound(_) | Self::NoSuchResource => 404,
            Self::AlreadyExists(_) | Self::Conflict { .. } | Self::ApplyConflict { .. } => 409,
            Self::Invalid { .. } => 422,
            Self::BadRequest(_) => 400,
            Self::Unauthorized => 401,
            Self::Forbidden { .. } => 403,
            Self::AdmissionDenied { code, .. } => *code,
            Self::InternalError(_) => 500,
            Self::MethodNotAllowed => 405,
            Self::UnsupportedMediaType(_) => 415,
            Self::Expired { .. } => 410,
        }
    }

    /// apimachinery `StatusReason`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotFound(_) | Self::NoSuchResource => "NotFound",
            Self::AlreadyExists(_) => "AlreadyExists",
            Self::Conflict { .. } | Self::ApplyConflict { .. } => "Conflict",
            Self::Invalid { .. } => "Invalid",
            Self::BadRequest(_) => "BadRequest",
            Self::Unauthorized => "Unauthorized",
            Self::Forbidden { .. } => "Forbidden",
            Self::AdmissionDenied { .. } => "",
            Self::InternalError(_) => "InternalError",
            Self::MethodNotAllowed => "MethodNotAllowed",
            Self::UnsupportedMediaType(_) => "UnsupportedMediaType",
            Self::Expired { .. } => "Expired",
        }
    }

    /// The `v1.Status` body.
    pub fn status_body(&self) -> Value {
        let mut status = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.to_string(), "reason": self.reason(), "code": self.code(),
        });
        if self.reason().is_empty()
            && let Some(map) = status.as_object_mut()
        {
            map.remove("reason");
        }
        let details = match self {
            Self::NotFound(subject) | Self::AlreadyExists(subject) | Self::Conflict { subject, .. } => {
                Some(details(subject, &subject.resource, &[]))
            }
            Self::ApplyConflict { subject, causes } => Some(details(subject, &subject.resource, causes)),
            Self::Invalid { subject, causes } => Some(details(subject, &subject.kind, causes)),
            Self::NoSuchResource => Some(json!({})),
            Self::Forbidden { subject, .. } => {
                // StatusDetails' fields are omitempty: a request without name or resource has none.
                let mut details = Map::new();
                for (key, value) in [("name", &subject.name), ("group", &subject.group), ("kind", &subject.resource)] {
                    if !value.is_empty() {
                        details.insert(key.into(), json!(value));
                    }
                }
                Some(Value::Object(details))
            }
            _ => None,
        };
        if let Some(details) = details {
            status["details"] = details;
        }
        status
    }
}

/// `StatusDetails`: `kind` is the resource for lookups and the Kind for validation, as upstream.
fn details(subject: &Subject, kind: &str, causes: &[Cause]) -> Value {
    let mut details = Map::new();
    details.insert("name".into(), json!(subject.name));
    if !subject.group.is_empty() {
        details.insert("group".into(), json!(subject.group));
    }
    details.insert("kind".into(), json!(kind));
    if !causes.is_empty() {
        let causes: Vec<Value> =
            causes.iter().map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field})).collect();
        details.insert("causes".into(), Value::Array(causes));
    }
    Value::Object(details)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk_subject() -> Subject {
        Subject {
            group: "windows.k8s.io".into(),
            resource: "gmsacredentialspecs".into(),
            kind: "GMSACredentialSpec".into(),
            name: "spec".into(),
        }
    }

    #[test]
    fn not_found_names_resource_and_group() {
        let body = ApiError::NotFound(mk_subject()).status_body();
        assert_eq!(body["message"], "gmsacredentialspecs.windows.k8s.io \"spec\" not found");
        assert_eq!(body["reason"], "NotFound");
        assert_eq!(body["code"], 404);
        assert_eq!(body["details"], json!({"name": "spec", "group": "windows.k8s.io", "kind": "gmsacredentialspecs"}));
    }

    #[test]
    fn invalid_lists_each_cause_with_its_field() {
        let causes = vec![Cause::type_invalid("credspec.CmsPlugins", &json!("x"), "array")];
        let body = ApiError::Invalid { subject: mk_subject(), causes }.status_body();
        assert_eq!(body["code"], 422);
        assert_eq!(
            body["message"],
            "GMSACredentialSpec.windows.k8s.io \"spec\" is invalid: credspec.CmsPlugins: Invalid value: \"x\": credspec.CmsPlugins in body must be of type array: \"string\""
        );
        assert_eq!(body["details"]["causes"][0]["field"], "credspec.CmsPlugins");
        assert_eq!(body["details"]["kind"], "GMSACredentialSpec");
    }

    #[test]
    fn core_group_subjects_carry_no_group() {
        let subject =
            Subject { resource: "configmaps".into(), kind: "ConfigMap".into(), name: "a".into(), ..Subject::default() };
        let body = ApiError::AlreadyExists(subject).status_body();
        assert_eq!(body["message"], "configmaps \"a\" already exists");
        assert!(body["details"].get("group").is_none());
    }
}
