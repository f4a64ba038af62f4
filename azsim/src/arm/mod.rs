//! The ARM listener: authenticates the bearer token (first, as ARM does), parses the resource
//! path (case-insensitively), checks the api-version against what the resource provider registers,
//! applies ARM's per-subscription budget and the injected faults, then dispatches to one module
//! per resource type. The same listener serves the Entra token endpoint.

pub(crate) mod error;
pub(crate) mod identities;
pub(crate) mod managed_clusters;
pub(crate) mod role_assignments;
pub(crate) mod route;
pub(crate) mod scale_sets;
pub(crate) mod subscriptions;
pub(crate) mod vaults;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::time::Instant;

use crate::config::Operation;
use crate::faults::Verdict;
use crate::sim::Shared;
use crate::token::{Claims, TokenError, parse_form};
use crate::{keyvault, tls, token_endpoint};
use error::{ArmError, ArmResult};
use route::Route;

/// Audiences ARM accepts (v1 and v2 forms, with and without the trailing slash).
const ARM_AUDIENCES: [&str; 4] = [
    "https://management.azure.com",
    "https://management.azure.com/",
    "https://management.core.windows.net",
    "https://management.core.windows.net/",
];

/// One authenticated ARM request, as handlers see it.
pub(crate) struct ArmRequest<'a> {
    pub(crate) method: &'a Method,
    pub(crate) api_version: String,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) body: &'a [u8],
    pub(crate) query: Vec<(String, String)>,
    pub(crate) caller: Claims,
    pub(crate) arm_endpoint: &'a str,
}

impl ArmRequest<'_> {
    /// The JSON body, or ARM's `InvalidRequestContent`.
    pub(crate) fn json_body(&self) -> Result<Value, ArmError> {
        serde_json::from_slice(self.body).map_err(|error| {
            ArmError::bad_request(
                "InvalidRequestContent",
                format!("The request content was invalid and could not be deserialized: '{error}'."),
            )
        })
    }

    /// A header value as text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// A query parameter.
    pub(crate) fn query_param(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }
}

/// The axum router of the ARM + Entra listener (one fallback: paths are parsed by hand).
pub(crate) fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(shared)
}

async fn handle(
    AxumState(shared): AxumState<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let segments: Vec<&str> = uri.path().split('/').filter(|segment| !segment.is_empty()).collect();
    if let [tenant, oauth2, version, token] = segments.as_slice()
        && method == Method::POST
        && oauth2.eq_ignore_ascii_case("oauth2")
        && version.eq_ignore_ascii_case("v2.0")
        && token.eq_ignore_ascii_case("token")
    {
        return token_endpoint::handle(&shared, tenant, &body).await;
    }
    // The name the client used (HTTP/1.1 `Host`, HTTP/2 `:authority`).
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .or_else(|| uri.authority().map(|authority| authority.to_string()))
        .unwrap_or_default();
    if method == Method::GET {
        // Entra's discovery documents, next to the token endpoint.
        match segments.as_slice() {
            [tenant, "v2.0", well_known, configuration] | [tenant, well_known, configuration, ..]
                if well_known.eq_ignore_ascii_case(".well-known")
                    && configuration.eq_ignore_ascii_case("openid-configuration") =>
            {
                return token_endpoint::openid_configuration(&shared.lock(), &host, tenant);
            }
            [common, discovery, instance]
                if common.eq_ignore_ascii_case("common")
                    && discovery.eq_ignore_ascii_case("discovery")
                    && instance.eq_ignore_ascii_case("instance") =>
            {
                let tenant = shared.lock().tenant_id.clone();
                return token_endpoint::instance_discovery(&host, &tenant);
            }
            _ => {}
        }
    }
    let query = parse_form(uri.query().unwrap_or_default());
    let request_id = shared.lock().new_guid();
    let result = serve_arm(&shared, &method, &segments, query, &headers, &host, &body).await;
    into_response(result, &request_id)
}

async fn serve_arm(
    shared: &Arc<Shared>,
    method: &Method,
    segments: &[&str],
    query: Vec<(String, String)>,
    headers: &HeaderMap,
    host: &str,
    body: &[u8],
) -> ArmResult {
    // ARM authenticates before it looks at the path or the api-version: a request without a
    // valid token gets 401 with the challenge whatever else is wrong with it.
    let authorization = headers.get("authorization").and_then(|value| value.to_str().ok());
    let caller = {
        let state = shared.lock();
        token_endpoint::validate(&state, authorization, &ARM_AUDIENCES).map_err(unauthorized)?
    };
    let route = Route::parse(segments)?;
    let operation = route.operation(method)?;
    let api_version = query
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case("api-version"))
        .map(|(_, value)| value.clone())
        .ok_or_else(|| {
            ArmError::bad_request(
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        })?;
    route.check_api_version(&api_version, &shared.lock().location)?;

    // ARM's budget first (it throttles before the resource provider sees the request), then the
    // injected resource-provider faults.
    let (verdict, remaining) = {
        let mut state = shared.lock();
        state.settle(Instant::now());
        if let Some(subscription) = route.subscription()
            && !state.subscriptions.contains(&subscription.to_ascii_lowercase())
        {
            return Err(ArmError::new(
                StatusCode::NOT_FOUND,
                "SubscriptionNotFound",
                format!("The subscription '{subscription}' could not be found."),
            ));
        }
        let remaining = match route.subscription() {
            Some(subscription) => {
                let is_write = operation.is_arm_write();
                state.faults.charge(subscription, is_write, Instant::now()).map_err(|over| {
                    let kind = if is_write { "write" } else { "read" };
                    ArmError::throttled(
                        "SubscriptionRequestsThrottled",
                        format!(
                            "Number of '{kind}' requests for subscription '{subscription}' actions exceeded. Please try again after '{}' seconds after additional tokens are available. Refer to https://aka.ms/arm-throttling for additional information.",
                            over.retry_after_secs
                        ),
                        over.retry_after_secs,
                    )
                })?
            }
            None => None,
        };
        (state.faults.decide(operation), remaining.map(|left| (operation.is_arm_write(), left)))
    };
    let delay = match &verdict {
        Verdict::Serve { delay } | Verdict::Throttle { delay, .. } | Verdict::ServerError { delay, .. } => *delay,
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match verdict {
        Verdict::Throttle { retry_after_secs, .. } => {
            return Err(ArmError::throttled(
                "TooManyRequests",
                format!(
                    "The request was throttled by the resource provider. Please retry after {retry_after_secs} seconds."
                ),
                retry_after_secs,
            ));
        }
        Verdict::ServerError { status, .. } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let code =
                if status == StatusCode::SERVICE_UNAVAILABLE { "ServiceUnavailable" } else { "InternalServerError" };
            return Err(ArmError::new(
                status,
                code,
                "The server encountered an internal error. Please retry the request.",
            ));
        }
        Verdict::Serve { .. } => {}
    }

    // Operation URLs name the endpoint the client used: Azure's own through the proxy.
    let via_proxy = host.split(':').next().is_some_and(|name| name.eq_ignore_ascii_case(crate::proxy::ARM_HOST));
    let public_endpoint = format!("https://{}", crate::proxy::ARM_HOST);
    let arm_endpoint = if via_proxy { public_endpoint.as_str() } else { shared.arm_endpoint.as_str() };
    let request = ArmRequest { method, api_version, headers, body, query, caller, arm_endpoint };
    let response = dispatch(shared, &route, operation, &request).await?;
    Ok(match remaining {
        Some((true, left)) => response.with_header("x-ms-ratelimit-remaining-subscription-writes", left.to_string()),
        Some((false, left)) => response.with_header("x-ms-ratelimit-remaining-subscription-reads", left.to_string()),
        None => response,
    })
}

async fn dispatch(shared: &Arc<Shared>, route: &Route, operation: Operation, request: &ArmRequest<'_>) -> ArmResult {
    match route {
        Route::Subscriptions => subscriptions::list(&shared.lock()),
        Route::Subscription { subscription } => subscriptions::get(&shared.lock(), subscription),
        Route::Tenants => subscriptions::tenants(&shared.lock()),
        Route::Resources { subscription } => subscriptions::list_resources(&shared.lock(), subscription, request),
        Route::Cluster { subscription, resource_group, name } => {
            let mut state = shared.lock();
            match operation {
                Operation::ClusterPut => {
                    managed_clusters::put(&mut state, subscription, resource_group, name, request, Instant::now())
                }
                _ => managed_clusters::get(&state, subscription, resource_group, name),
            }
        }
        Route::ClusterOperation { location, operation_id, result, .. } => {
            managed_clusters::operation_status(&shared.lock(), location, operation_id, *result)
        }
        Route::Vault { subscription, resource_group, name } => {
            if operation == Operation::VaultGet {
                return vaults::get(&shared.lock(), subscription, resource_group, name);
            }
            // A new vault needs its data-plane listener before the answer names its vaultUri.
            let exists = shared.lock().vaults.contains_key(&vaults::key(subscription, resource_group, name));
            let listener = if exists || request.method != Method::PUT {
                None
            } else {
                Some(tls::bind_loopback().await.map_err(|error| {
                    ArmError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", error.to_string())
                })?)
            };
            let port = listener.as_ref().and_then(|listener| listener.local_addr().ok()).map(|address| address.port());
            let (response, created) = {
                let mut state = shared.lock();
                vaults::put_or_patch(&mut state, subscription, resource_group, name, request, port)?
            };
            if let (Some(listener), Some(vault_id)) = (listener, created) {
                keyvault::spawn_listener(shared, listener, &vault_id);
            }
            Ok(response)
        }
        Route::AccessPolicies { subscription, resource_group, name, kind } => {
            vaults::update_access_policies(&mut shared.lock(), subscription, resource_group, name, kind, request)
        }
        Route::RoleAssignments { scope, name } => {
            let mut state = shared.lock();
            match (operation, name) {
                (Operation::RoleAssignmentPut, Some(name)) => role_assignments::put(&mut state, scope, name, request),
                (Operation::RoleAssignmentDelete, Some(name)) => role_assignments::delete(&mut state, scope, name),
                (_, Some(name)) => role_assignments::get(&state, scope, name),
                (_, None) => role_assignments::list(&state, scope, request),
            }
        }
        Route::Identity { subscription, resource_group, name } => {
            let mut state = shared.lock();
            match operation {
                Operation::IdentityPut => identities::put(&mut state, subscription, resource_group, name, request),
                Operation::IdentityDelete => identities::delete(&mut state, subscription, resource_group, name),
                _ => identities::get(&state, subscription, resource_group, name),
            }
        }
        Route::ScaleSets { subscription, resource_group, name } => {
            let mut state = shared.lock();
            match (operation, name) {
                (Operation::ScaleSetUpdate, Some(name)) => {
                    scale_sets::update(&mut state, subscription, resource_group, name, request)
                }
                (_, Some(name)) => scale_sets::get(&state, subscription, resource_group, name),
                (_, None) => scale_sets::list(&state, subscription, resource_group),
            }
        }
    }
}

/// ARM's 401 answers, by failure.
fn unauthorized(error: TokenError) -> ArmError {
    let (code, message) = match &error {
        TokenError::Missing => {
            ("AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.".to_string())
        }
        TokenError::Expired { .. } => (
            "ExpiredAuthenticationToken",
            "The access token expiry UTC time is earlier than current UTC time.".to_string(),
        ),
        TokenError::WrongAudience { audience } => (
            "InvalidAuthenticationTokenAudience",
            format!(
                "The access token has been obtained for wrong audience or resource '{audience}'. It should exactly match with one of the allowed audiences 'https://management.core.windows.net/','https://management.core.windows.net','https://management.azure.com/','https://management.azure.com'."
            ),
        ),
        TokenError::Malformed | TokenError::Unknown => {
            ("InvalidAuthenticationToken", "The access token is invalid.".to_string())
        }
    };
    let mut arm_error = ArmError::new(StatusCode::UNAUTHORIZED, code, message);
    arm_error.headers.push((
        "WWW-Authenticate".to_string(),
        format!(
            "Bearer authorization_uri=\"https://login.microsoftonline.com/common\", error=\"invalid_token\", error_description=\"{error}\""
        ),
    ));
    arm_error
}

/// Turns a handler result into the HTTP response with ARM's standard headers.
fn into_response(result: ArmResult, request_id: &str) -> Response {
    let (status, headers, body, retry_after) = match result {
        Ok(response) => (response.status, response.headers, response.body, None),
        Err(error) => {
            tracing::debug!(status = %error.status, code = %error.code, "azsim ARM error");
            let body = error.body();
            (error.status, error.headers, Some(body), error.retry_after_secs)
        }
    };
    let mut response = match body {
        Some(body) => (status, axum::Json(body)).into_response(),
        None => status.into_response(),
    };
    let response_headers = response.headers_mut();
    for (name, value) in headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.clone()))
        .chain([("x-ms-request-id", request_id.to_string()), ("x-ms-correlation-request-id", request_id.to_string())])
    {
        if let (Ok(name), Ok(value)) =
            (axum::http::HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(&value))
        {
            response_headers.insert(name, value);
        }
    }
    if let Some(seconds) = retry_after
        && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
    {
        response_headers.insert(axum::http::header::RETRY_AFTER, value);
    }
    response
}
