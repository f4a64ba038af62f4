//! The HTTPS front of one simulated cluster, in the apiserver's filter order: authentication
//! (bearer token), impersonation, request info (path and query parsed the way the API server
//! routes them), authorization (RBAC, for resource and non-resource requests alike), then
//! dispatch to discovery, OpenAPI, access reviews, reads, watches and the write verbs, and
//! rendering of results and `v1.Status` errors.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::authn::{TokenTable, authenticate, impersonate};
use crate::rbac::{Request, UserInfo, policy_of};
use crate::registry::ResourceType;
use crate::review::{self, ReviewKind};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{FieldValidation, Origin, Store, WriteOptions, lock};
use crate::watch::{self, WatchRequest};
use crate::write::{self, PatchKind};
use crate::{discovery, openapi};

/// Shared by all requests of one cluster.
struct ServerState {
    store: Arc<Mutex<Store>>,
    /// Bearer tokens the server accepts and whom they authenticate.
    tokens: Arc<Mutex<TokenTable>>,
    cluster: String,
    address: String,
}

/// Starts serving `store` over TLS on `listener`; the task ends when aborted (which also ends
/// every open connection and watch).
pub(crate) fn spawn(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    store: Arc<Mutex<Store>>,
    tokens: Arc<Mutex<TokenTable>>,
    cluster: String,
) -> tokio::task::JoinHandle<()> {
    let address = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let state = Arc::new(ServerState { store, tokens, cluster, address });
    let router = axum::Router::new().fallback(handle).with_state(state);
    tokio::spawn(crate::tls::serve(listener, acceptor, router))
}

fn json_response(code: StatusCode, body: &Value, warnings: &[String]) -> Response {
    let mut response = (code, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response();
    for warning in warnings {
        let text = format!("299 - \"{}\"", warning.replace('"', "\\\""));
        if let Ok(value) = HeaderValue::from_str(&text) {
            response.headers_mut().append(header::WARNING, value);
        }
    }
    response
}

fn error_response(error: &ApiError) -> Response {
    let code = StatusCode::from_u16(error.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(code, &error.status_body(), &[])
}

/// Decoded query parameters.
#[derive(Default)]
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(uri: &Uri) -> Self {
        let pairs = uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (percent_decode(key), percent_decode(value))
            })
            .collect();
        Self(pairs)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    fn flag(&self, name: &str) -> bool {
        matches!(self.get(name), Some("true") | Some("1"))
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' if index + 2 < bytes.len() => match u8::from_str_radix(&text[index + 1..index + 3], 16) {
                Ok(byte) => {
                    out.push(byte);
                    index += 3;
                    continue;
                }
                Err(_) => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            byte => out.push(byte),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What a resource path addresses.
struct Target {
    resource_type: ResourceType,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

/// The verb of a resource request, as the apiserver's request-info resolver names it.
fn resource_verb(method: &Method, has_name: bool, query: &Query) -> Option<&'static str> {
    Some(match (method, has_name) {
        (&Method::GET, false) if query.flag("watch") => "watch",
        (&Method::GET, false) => "list",
        (&Method::POST, false) => "create",
        (&Method::GET, true) if query.flag("watch") => "watch",
        (&Method::GET, true) => "get",
        (&Method::PUT, true) => "update",
        (&Method::PATCH, true) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) => "deletecollection",
        _ => return None,
    })
}

async fn handle(
    State(state): State<Arc<ServerState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let requester = match authenticate(&lock(&state.tokens), &headers) {
        Ok(user) => user,
        Err(error) => return error_response(&error),
    };
    let span = tracing::debug_span!("kubesim_request", cluster = %state.cluster, %method, path = %uri.path());
    let _entered = span.enter();
    let user = {
        let store = lock(&state.store);
        match impersonate(requester, &headers, &policy_of(&store)) {
            Ok(user) => user,
            Err(error) => return error_response(&error),
        }
    };
    let query = Query::parse(&uri);
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    let types = lock(&state.store).types();
    let non_resource = match (method.clone(), segments.as_slice()) {
        (Method::GET, ["version"]) => Some(Some(discovery::version())),
        (Method::GET, ["api"]) => Some(Some(discovery::core_versions(&state.address))),
        (Method::GET, ["api", version]) => Some(discovery::resource_list(&types, "", version)),
        (Method::GET, ["apis"]) => Some(Some(discovery::group_list(&types))),
        (Method::GET, ["apis", group]) => Some(discovery::group(&types, group)),
        (Method::GET, ["apis", group, version]) => Some(discovery::resource_list(&types, group, version)),
        (Method::GET, ["openapi", "v3"]) => Some(Some(openapi::index(&types))),
        (Method::GET, ["openapi", "v3", rest @ ..]) => Some(openapi::group_version(&types, &rest.join("/"))),
        (Method::GET, ["openapi", ..]) => Some(None),
        (Method::GET, ["healthz" | "livez" | "readyz"]) => {
            return authorized_non_resource(&state, &user, &method, uri.path(), || {
                (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], "ok").into_response()
            });
        }
        _ => None,
    };
    if let Some(document) = non_resource {
        // Aggregated-discovery Accept headers get the classic form, as from a server without it.
        return authorized_non_resource(&state, &user, &method, uri.path(), || match document {
            Some(document) => json_response(StatusCode::OK, &document, &[]),
            None => error_response(&ApiError::NoSuchResource),
        });
    }
    let target = match segments.as_slice() {
        ["api", version, rest @ ..] => resolve_target(&types, "", version, rest),
        ["apis", group, version, rest @ ..] => resolve_target(&types, group, version, rest),
        _ => None,
    };
    let Some(target) = target else {
        return authorized_non_resource(&state, &user, &method, uri.path(), || {
            error_response(&ApiError::NoSuchResource)
        });
    };
    let Some(verb) = resource_verb(&method, target.name.is_some(), &query) else {
        return error_response(&ApiError::MethodNotAllowed);
    };
    let request = Request::Resource {
        verb: verb.to_owned(),
        group: target.resource_type.group.clone(),
        resource: target.resource_type.plural.clone(),
        subresource: target.subresource.clone().unwrap_or_default(),
        namespace: target.namespace.clone().unwrap_or_default(),
        name: target.name.clone().unwrap_or_default(),
    };
    if !policy_of(&lock(&state.store)).authorize(&user, &request).allowed {
        let name = target.name.clone().unwrap_or_default();
        let (group, plural) = (&target.resource_type.group, &target.resource_type.plural);
        tracing::debug!(user = %user.name, verb, resource = %plural, "request forbidden");
        return error_response(&crate::authn::forbidden(&user, &request, group, plural, &name));
    }
    let content_type =
        headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/json").to_owned();
    if let Some(kind) = ReviewKind::from_plural(&target.resource_type.plural)
        .filter(|_| target.resource_type.group == "authorization.k8s.io")
    {
        let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        return match access_review(&state, kind, &user, &content_type, &body) {
            Ok(review) if accept.starts_with(review::PROTOBUF) => (
                StatusCode::CREATED,
                [(header::CONTENT_TYPE, review::PROTOBUF)],
                review::encode_protobuf(kind, &review),
            )
                .into_response(),
            Ok(review) => json_response(StatusCode::CREATED, &review, &[]),
            Err(error) => error_response(&error),
        };
    }
    let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("unknown").to_owned();
    match serve(&state, method, target, &query, &content_type, &user_agent, &body) {
        Ok(response) => response,
        Err(error) => {
            tracing::debug!(code = error.code(), reason = error.reason(), "request refused");
            error_response(&error)
        }
    }
}

/// Answers a non-resource request with `respond` if the user may `<verb>` its path.
fn authorized_non_resource(
    state: &ServerState,
    user: &UserInfo,
    method: &Method,
    path: &str,
    respond: impl FnOnce() -> Response,
) -> Response {
    let request = Request::NonResource { verb: method.as_str().to_ascii_lowercase(), path: path.to_owned() };
    if policy_of(&lock(&state.store)).authorize(user, &request).allowed {
        respond()
    } else {
        error_response(&ApiError::Forbidden {
            subject: Default::default(),
            message: request.forbidden_message(&user.name),
        })
    }
}

/// Decodes (JSON or protobuf) and evaluates an access review.
fn access_review(
    state: &ServerState,
    kind: ReviewKind,
    user: &UserInfo,
    content_type: &str,
    body: &Bytes,
) -> Result<Value, ApiError> {
    let review = if content_type.starts_with(review::PROTOBUF) {
        review::decode_protobuf(kind, body)?
    } else {
        decode_body(body, false)?
    };
    review::evaluate(kind, review, user, &policy_of(&lock(&state.store)))
}

fn resolve_target(types: &[ResourceType], group: &str, version: &str, rest: &[&str]) -> Option<Target> {
    let find =
        |plural: &str| types.iter().find(|t| t.group == group && t.version == version && t.plural == plural).cloned();
    let target =
        |resource_type: ResourceType, namespace: Option<&str>, name: Option<&str>, subresource: Option<&str>| Target {
            resource_type,
            namespace: namespace.map(str::to_owned),
            name: name.map(str::to_owned),
            subresource: subresource.map(str::to_owned),
        };
    match rest {
        ["namespaces", namespace, plural, tail @ ..] if find(plural).is_some_and(|t| t.namespaced) => {
            let resource_type = find(plural)?;
            match tail {
                [] => Some(target(resource_type, Some(namespace), None, None)),
                [name] => Some(target(resource_type, Some(namespace), Some(name), None)),
                [name, subresource] => Some(target(resource_type, Some(namespace), Some(name), Some(subresource))),
                _ => None,
            }
        }
        [plural, tail @ ..] => {
            let resource_type = find(plural)?;
            match tail {
                [] => Some(target(resource_type, None, None, None)),
                [name] if !resource_type.namespaced => Some(target(resource_type, None, Some(name), None)),
                [name, subresource] if !resource_type.namespaced => {
                    Some(target(resource_type, None, Some(name), Some(subresource)))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

fn decode_body(body: &Bytes, yaml_allowed: bool) -> Result<Value, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(value) => Ok(value),
        Err(json_error) if yaml_allowed => serde_yaml::from_slice::<Value>(body).map_err(|yaml_error| {
            ApiError::BadRequest(format!("error decoding YAML: {yaml_error} (as JSON: {json_error})"))
        }),
        Err(error) => {
            Err(ApiError::BadRequest(format!("the body of the request could not be decoded as JSON: {error}")))
        }
    }
}

fn write_options(query: &Query, user_agent: &str) -> Result<WriteOptions, ApiError> {
    let dry_run = match query.get("dryRun") {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!("Invalid dry run value: {other}: supported values: \"All\"")));
        }
    };
    let field_validation = match query.get("fieldValidation") {
        None | Some("") | Some("Warn") => FieldValidation::Warn,
        Some("Strict") => FieldValidation::Strict,
        Some("Ignore") => FieldValidation::Ignore,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "fieldValidation must be one of \"Ignore\", \"Warn\", or \"Strict\", got {other:?}"
            )));
        }
    };
    // Without fieldManager the API server names the manager after the client's user agent.
    let default_manager = user_agent.split('/').next().unwrap_or("unknown").to_owned();
    let field_manager = query.get("fieldManager").filter(|m| !m.is_empty()).map(str::to_owned);
    Ok(WriteOptions {
        dry_run,
        force: query.flag("force"),
        field_manager: field_manager.unwrap_or(default_manager),
        field_validation,
        origin: Origin::Api,
    })
}

fn serve(
    state: &ServerState,
    method: Method,
    target: Target,
    query: &Query,
    content_type: &str,
    user_agent: &str,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let resource_type = &target.resource_type;
    let namespace = target.namespace.as_deref();
    if let Some(subresource) = &target.subresource {
        // Only reading the status subresource is modelled.
        if subresource != "status" || !resource_type.status_subresource {
            return Err(ApiError::NoSuchResource);
        }
        if method != Method::GET {
            return Err(ApiError::MethodNotAllowed);
        }
    }
    let verb = match resource_verb(&method, target.name.is_some(), query) {
        Some(verb @ ("watch" | "list" | "create" | "get" | "update" | "patch" | "delete")) => verb,
        _ => return Err(ApiError::MethodNotAllowed),
    };
    if verb == "watch" && target.name.is_some() {
        return Err(ApiError::MethodNotAllowed);
    }
    if !resource_type.allows(verb) {
        return Err(ApiError::MethodNotAllowed);
    }
    let name = target.name.clone().unwrap_or_default();
    match verb {
        "watch" => {
            let request = WatchRequest {
                resource_type: resource_type.clone(),
                namespace: target.namespace.clone(),
                labels: LabelSelector::parse(query.get("labelSelector").unwrap_or("")).map_err(ApiError::BadRequest)?,
                fields: FieldSelector::parse(query.get("fieldSelector").unwrap_or(""), &resource_type.kind)
                    .map_err(ApiError::BadRequest)?,
                resource_version: match query.get("resourceVersion") {
                    None | Some("") => None,
                    Some(text) => Some(
                        text.parse().map_err(|_| ApiError::BadRequest(format!("invalid resource version: {text}")))?,
                    ),
                },
                send_initial_events: query.flag("sendInitialEvents"),
                timeout: Duration::from_secs(query.get("timeoutSeconds").and_then(|t| t.parse().ok()).unwrap_or(1800)),
            };
            let stream = watch::open(&state.store, request);
            Ok(([(header::CONTENT_TYPE, "application/json")], Body::from_stream(stream)).into_response())
        }
        "list" => list(state, resource_type, namespace, query),
        "get" => Ok(json_response(StatusCode::OK, &lock(&state.store).get(resource_type, namespace, &name)?, &[])),
        "create" => {
            let options = write_options(query, user_agent)?;
            let mut object = decode_body(body, false)?;
            let mut store = lock(&state.store);
            if resource_type.group.is_empty() && resource_type.plural == "pods" && object["metadata"].is_object() {
                object["metadata"]["namespace"] = json!(namespace.unwrap_or("default"));
                crate::controller::admit_pod(&store, &mut object)?;
            }
            let written = write::create(&mut store, resource_type, namespace, object, &options)?;
            Ok(json_response(StatusCode::CREATED, &written.object, &written.warnings))
        }
        "update" => {
            let options = write_options(query, user_agent)?;
            let written = write::update(
                &mut lock(&state.store),
                resource_type,
                namespace,
                &name,
                decode_body(body, false)?,
                &options,
            )?;
            Ok(json_response(StatusCode::OK, &written.object, &written.warnings))
        }
        "patch" => {
            let kind = PatchKind::from_content_type(content_type, resource_type)?;
            let options = write_options(query, user_agent)?;
            if options.force && kind != PatchKind::Apply {
                return Err(ApiError::BadRequest("force may only be set for apply patches".into()));
            }
            let patch_body = decode_body(body, kind == PatchKind::Apply)?;
            let written =
                write::patch(&mut lock(&state.store), resource_type, namespace, &name, kind, patch_body, &options)?;
            let code = if written.created { StatusCode::CREATED } else { StatusCode::OK };
            Ok(json_response(code, &written.object, &written.warnings))
        }
        _ => {
            let options = write_options(query, user_agent)?;
            let delete_options = if body.is_empty() { json!({}) } else { decode_body(body, false)? };
            let dry_run =
                options.dry_run || delete_options["dryRun"].as_array().is_some_and(|d| d.iter().any(|v| v == "All"));
            let options = WriteOptions { dry_run, ..options };
            let deleted =
                write::delete(&mut lock(&state.store), resource_type, namespace, &name, &delete_options, &options)?;
            Ok(json_response(StatusCode::OK, &deleted, &[]))
        }
    }
}

/// LIST with selectors and `limit`/`continue` paging (continue tokens are offsets).
fn list(
    state: &ServerState,
    resource_type: &ResourceType,
    namespace: Option<&str>,
    query: &Query,
) -> Result<Response, ApiError> {
    let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or("")).map_err(ApiError::BadRequest)?;
    let fields = FieldSelector::parse(query.get("fieldSelector").unwrap_or(""), &resource_type.kind)
        .map_err(ApiError::BadRequest)?;
    let (items, resource_version) = {
        let store = lock(&state.store);
        (store.list(resource_type, namespace), store.resource_version())
    };
    let mut items: Vec<Value> = items.into_iter().filter(|o| labels.matches(o) && fields.matches(o)).collect();
    let offset = match query.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => token
            .strip_prefix("kubesim:")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| ApiError::BadRequest(format!("continue key is not valid: {token}")))?,
        None => 0,
    };
    items = items.split_off(offset.min(items.len()));
    let mut metadata = json!({"resourceVersion": resource_version.to_string()});
    if let Some(limit) = query.get("limit").and_then(|l| l.parse::<usize>().ok()).filter(|l| *l > 0)
        && items.len() > limit
    {
        metadata["remainingItemCount"] = json!(items.len() - limit);
        metadata["continue"] = json!(format!("kubesim:{}", offset + limit));
        items.truncate(limit);
    }
    let body = json!({"kind": resource_type.list_kind(), "apiVersion": resource_type.api_version(), "metadata": metadata, "items": items});
    Ok(json_response(StatusCode::OK, &body, &[]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_handles_selectors() {
        assert_eq!(percent_decode("kubernetes.io%2Fos%3Dwindows"), "kubernetes.io/os=windows");
        assert_eq!(percent_decode("a+in+%28x%29"), "a in (x)");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
