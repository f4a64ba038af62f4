//! `authorization.k8s.io/v1` access reviews: `SelfSubjectAccessReview` (may I?) and
//! `SubjectAccessReview` (may they?), answered by the cluster's RBAC policy, in JSON and in
//! Kubernetes' protobuf envelope — `kubectl auth can-i` sends its review in protobuf only.
//!
//! The protobuf form is `k8s\0` followed by a `runtime.Unknown` message (typeMeta = 1, raw = 2)
//! whose `raw` is the review (`metadata` = 1, `spec` = 2, `status` = 3), with the field numbers
//! of `k8s.io/api/authorization/v1/generated.proto`. Only the fields a review carries are
//! decoded; others are skipped by wire type, as protobuf readers do.

use serde_json::{Value, json};

use crate::rbac::{Decision, Policy, Request, UserInfo};
use crate::status::ApiError;

/// The protobuf media type of the Kubernetes API.
pub(crate) const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";
const MAGIC: &[u8] = b"k8s\0";

/// Which review a request creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReviewKind {
    SelfSubject,
    Subject,
}

impl ReviewKind {
    /// From the resource's plural, `None` for resources that are not modelled reviews.
    pub fn from_plural(plural: &str) -> Option<Self> {
        match plural {
            "selfsubjectaccessreviews" => Some(Self::SelfSubject),
            "subjectaccessreviews" => Some(Self::Subject),
            _ => None,
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Self::SelfSubject => "SelfSubjectAccessReview",
            Self::Subject => "SubjectAccessReview",
        }
    }
}

/// Evaluates a decoded review body (JSON shape) for the requesting `user`; returns the review
/// with its `status` filled in.
pub(crate) fn evaluate(
    kind: ReviewKind,
    mut review: Value,
    user: &UserInfo,
    policy: &Policy<'_>,
) -> Result<Value, ApiError> {
    let spec = &review["spec"];
    let reviewed_user = match kind {
        ReviewKind::SelfSubject => user.clone(),
        ReviewKind::Subject => {
            let groups: Vec<&str> = spec["groups"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            let name = spec["user"].as_str().unwrap_or("");
            if name.is_empty() && groups.is_empty() {
                return Err(invalid(kind, "spec.user", "at least one of user or group must be specified"));
            }
            // A SubjectAccessReview names the groups itself; nothing is added.
            UserInfo { name: name.to_owned(), groups: groups.into_iter().map(str::to_owned).collect() }
        }
    };
    let request = if let Some(attributes) = spec.get("resourceAttributes").filter(|a| a.is_object()) {
        let text = |name: &str| attributes[name].as_str().unwrap_or("").to_owned();
        Request::Resource {
            verb: text("verb"),
            group: text("group"),
            resource: text("resource"),
            subresource: text("subresource"),
            namespace: text("namespace"),
            name: text("name"),
        }
    } else if let Some(attributes) = spec.get("nonResourceAttributes").filter(|a| a.is_object()) {
        Request::NonResource {
            verb: attributes["verb"].as_str().unwrap_or("").to_owned(),
            path: attributes["path"].as_str().unwrap_or("").to_owned(),
        }
    } else {
        return Err(invalid(
            kind,
            "spec.resourceAttributes",
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        ));
    };
    let Decision { allowed, reason } = policy.authorize(&reviewed_user, &request);
    let mut status = json!({"allowed": allowed});
    if !reason.is_empty() {
        status["reason"] = json!(reason);
    }
    review["apiVersion"] = json!("authorization.k8s.io/v1");
    review["kind"] = json!(kind.kind());
    if !review["metadata"].is_object() {
        review["metadata"] = json!({});
    }
    review["metadata"]["creationTimestamp"] = Value::Null;
    review["status"] = status;
    Ok(review)
}

fn invalid(kind: ReviewKind, field: &str, detail: &str) -> ApiError {
    let subject = crate::status::Subject {
        group: "authorization.k8s.io".into(),
        resource: String::new(),
        kind: kind.kind().into(),
        name: String::new(),
    };
    ApiError::Invalid { subject, causes: vec![crate::status::Cause::invalid(field, &Value::Null, detail)] }
}

// ---- protobuf ----------------------------------------------------------------------------

/// One length-delimited protobuf field: its number and its bytes (the reviews' requests carry
/// only strings and messages; other wire types are skipped).
type Field<'a> = (u32, &'a [u8]);

fn varint(input: &[u8], position: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *input.get(*position)?;
        *position += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// The fields of one message; `None` if it is not well-formed protobuf.
fn fields(input: &[u8]) -> Option<Vec<Field<'_>>> {
    let mut position = 0;
    let mut out = Vec::new();
    while position < input.len() {
        let key = varint(input, &mut position)?;
        let number = u32::try_from(key >> 3).ok()?;
        match key & 7 {
            0 => {
                varint(input, &mut position)?;
            }
            1 => position = position.checked_add(8)?,
            2 => {
                let length = usize::try_from(varint(input, &mut position)?).ok()?;
                let end = position.checked_add(length)?;
                out.push((number, input.get(position..end)?));
                position = end;
            }
            5 => position = position.checked_add(4)?,
            _ => return None,
        }
    }
    (position == input.len()).then_some(out)
}

fn bytes_field<'a>(fields: &[Field<'a>], number: u32) -> Option<&'a [u8]> {
    fields.iter().find(|(n, _)| *n == number).map(|(_, bytes)| *bytes)
}

fn string_field(fields: &[Field<'_>], number: u32) -> String {
    bytes_field(fields, number).map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default()
}

fn decode_attributes(input: &[u8], names: &[(u32, &str)]) -> Option<Value> {
    let fields = fields(input)?;
    let mut object = serde_json::Map::new();
    for (number, name) in names {
        let text = string_field(&fields, *number);
        if !text.is_empty() {
            object.insert((*name).to_owned(), json!(text));
        }
    }
    Some(Value::Object(object))
}

const RESOURCE_ATTRIBUTES: &[(u32, &str)] =
    &[(1, "namespace"), (2, "verb"), (3, "group"), (4, "version"), (5, "resource"), (6, "subresource"), (7, "name")];
const NON_RESOURCE_ATTRIBUTES: &[(u32, &str)] = &[(1, "path"), (2, "verb")];

/// Decodes a protobuf review request into its JSON shape.
pub(crate) fn decode_protobuf(kind: ReviewKind, body: &[u8]) -> Result<Value, ApiError> {
    let malformed =
        || ApiError::BadRequest(format!("the body of the request could not be decoded as a protobuf {}", kind.kind()));
    let envelope = body.strip_prefix(MAGIC).ok_or_else(malformed)?;
    let unknown = fields(envelope).ok_or_else(malformed)?;
    let raw = bytes_field(&unknown, 2).ok_or_else(malformed)?;
    let review = fields(raw).ok_or_else(malformed)?;
    let spec = fields(bytes_field(&review, 2).unwrap_or_default()).ok_or_else(malformed)?;
    let mut spec_json = serde_json::Map::new();
    if let Some(attributes) = bytes_field(&spec, 1) {
        spec_json.insert(
            "resourceAttributes".into(),
            decode_attributes(attributes, RESOURCE_ATTRIBUTES).ok_or_else(malformed)?,
        );
    }
    if let Some(attributes) = bytes_field(&spec, 2) {
        spec_json.insert(
            "nonResourceAttributes".into(),
            decode_attributes(attributes, NON_RESOURCE_ATTRIBUTES).ok_or_else(malformed)?,
        );
    }
    if kind == ReviewKind::Subject {
        spec_json.insert("user".into(), json!(string_field(&spec, 3)));
        let groups: Vec<String> = spec
            .iter()
            .filter(|(number, _)| *number == 4)
            .map(|(_, bytes)| String::from_utf8_lossy(bytes).into_owned())
            .collect();
        spec_json.insert("groups".into(), json!(groups));
        spec_json.insert("uid".into(), json!(string_field(&spec, 6)));
    }
    Ok(json!({"apiVersion": "authorization.k8s.io/v1", "kind": kind.kind(), "metadata": {}, "spec": spec_json}))
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_bytes(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    put_varint(out, u64::from(number) << 3 | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_string(out: &mut Vec<u8>, number: u32, value: &Value) {
    if let Some(text) = value.as_str().filter(|t| !t.is_empty()) {
        put_bytes(out, number, text.as_bytes());
    }
}

fn encode_attributes(attributes: &Value, names: &[(u32, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (number, name) in names {
        put_string(&mut out, *number, &attributes[*name]);
    }
    out
}

/// Encodes an evaluated review (JSON shape) in the protobuf envelope.
pub(crate) fn encode_protobuf(kind: ReviewKind, review: &Value) -> Vec<u8> {
    let spec_json = &review["spec"];
    let mut spec = Vec::new();
    if spec_json["resourceAttributes"].is_object() {
        put_bytes(&mut spec, 1, &encode_attributes(&spec_json["resourceAttributes"], RESOURCE_ATTRIBUTES));
    }
    if spec_json["nonResourceAttributes"].is_object() {
        put_bytes(&mut spec, 2, &encode_attributes(&spec_json["nonResourceAttributes"], NON_RESOURCE_ATTRIBUTES));
    }
    if kind == ReviewKind::Subject {
        put_string(&mut spec, 3, &spec_json["user"]);
        for group in spec_json["groups"].as_array().into_iter().flatten() {
            put_string(&mut spec, 4, group);
        }
        put_string(&mut spec, 6, &spec_json["uid"]);
    }
    let mut status = Vec::new();
    // `allowed` is not optional in the Go struct: always written.
    put_varint(&mut status, 1 << 3);
    put_varint(&mut status, u64::from(review["status"]["allowed"].as_bool().unwrap_or(false)));
    put_string(&mut status, 2, &review["status"]["reason"]);
    let mut message = Vec::new();
    put_bytes(&mut message, 1, &[]);
    put_bytes(&mut message, 2, &spec);
    put_bytes(&mut message, 3, &status);
    let mut type_meta = Vec::new();
    put_bytes(&mut type_meta, 1, b"authorization.k8s.io/v1");
    put_bytes(&mut type_meta, 2, kind.kind().as_bytes());
    let mut unknown = Vec::new();
    put_bytes(&mut unknown, 1, &type_meta);
    put_bytes(&mut unknown, 2, &message);
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&unknown);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protobuf_reviews_round_trip() {
        let review = json!({"spec": {"resourceAttributes": {"namespace": "default", "verb": "use", "group": "windows.k8s.io",
            "resource": "gmsacredentialspecs", "name": "aks-gmsa-spec"}}, "status": {"allowed": true, "reason": "r"}});
        let encoded = encode_protobuf(ReviewKind::SelfSubject, &review);
        let decoded = decode_protobuf(ReviewKind::SelfSubject, &encoded).unwrap();
        assert_eq!(decoded["spec"], review["spec"]);
        assert_eq!(decoded["kind"], "SelfSubjectAccessReview");
    }

    #[test]
    fn subject_reviews_carry_user_and_groups() {
        let review = json!({"spec": {"user": "bob", "groups": ["a", "b"], "uid": "",
            "nonResourceAttributes": {"path": "/version", "verb": "get"}}, "status": {"allowed": false}});
        let decoded = decode_protobuf(ReviewKind::Subject, &encode_protobuf(ReviewKind::Subject, &review)).unwrap();
        assert_eq!(decoded["spec"]["groups"], json!(["a", "b"]));
        assert_eq!(decoded["spec"]["nonResourceAttributes"]["path"], "/version");
    }

    #[test]
    fn malformed_protobuf_is_a_bad_request() {
        assert!(matches!(decode_protobuf(ReviewKind::SelfSubject, b"k8s\0\x0a\xff"), Err(ApiError::BadRequest(_))));
        assert!(matches!(decode_protobuf(ReviewKind::SelfSubject, b"{}"), Err(ApiError::BadRequest(_))));
    }
}
