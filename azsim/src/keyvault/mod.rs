//! Key Vault secrets data plane, one loopback listener per vault (`vaultUri` =
//! `https://127.0.0.1:<port>/`): the 401 bearer challenge the SDK's challenge policy starts with,
//! token validation (audience `https://vault.azure.net`), authorization by access policy or RBAC
//! role assignment (403 with Key Vault's error body otherwise), injected faults, then the secret
//! operations in `secrets.rs`.
//!
//! Modelled on `specification/keyvault/data-plane/Microsoft.KeyVault/stable/7.5/secrets.json`
//! (and 7.6; the 1.x SDK's default `2025-07-01` is accepted too) and Key Vault's documented
//! authentication flow (challenge `WWW-Authenticate: Bearer authorization="...", resource="https://vault.azure.net"`).

mod deleted;
mod secrets;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::faults::Verdict;
use crate::sim::Shared;
use crate::token::{TokenError, parse_form};
use crate::{tls, token_endpoint};

/// Data-plane api-versions accepted, by rule: `7.0` … `7.6`, and the date-named versions from
/// `2025-07-01` (the Rust SDK 1.x's default) through `2026-04-01` (azure-keyvault-secrets 4.12's).
fn accepts_api_version(version: &str) -> bool {
    if let Some(minor) = version.strip_prefix("7.") {
        return minor.len() == 1 && minor.as_bytes()[0].is_ascii_digit() && minor <= "6";
    }
    match crate::arm::route::parse_api_version(version) {
        Some((date, false)) => ("2025-07-01"..="2026-04-01").contains(&date),
        _ => false,
    }
}
/// Audiences Key Vault accepts.
const VAULT_AUDIENCES: [&str; 2] = ["https://vault.azure.net", "https://vault.azure.net/"];

/// A Key Vault answer: status, body, extra headers.
pub(crate) struct VaultAnswer {
    pub(crate) status: StatusCode,
    pub(crate) body: Value,
    pub(crate) headers: Vec<(&'static str, String)>,
}

impl VaultAnswer {
    pub(crate) fn ok(body: Value) -> Self {
        VaultAnswer { status: StatusCode::OK, body, headers: Vec::new() }
    }

    /// Key Vault's error body `{"error":{"code","message"}}`.
    pub(crate) fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        VaultAnswer { status, body: json!({"error": {"code": code, "message": message.into()}}), headers: Vec::new() }
    }
}

/// Serves the data plane of the vault with state key `vault_id` on `listener`.
pub(crate) fn spawn_listener(shared: &Arc<Shared>, listener: TcpListener, vault_id: &str) {
    let router = axum::Router::new().fallback(handle).with_state((shared.clone(), vault_id.to_ascii_lowercase()));
    let task = tokio::spawn(tls::serve(listener, shared.tls.acceptor.clone(), router));
    shared.track(task.abort_handle());
}

async fn handle(
    AxumState((shared, vault_key)): AxumState<(Arc<Shared>, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = serve(&shared, &vault_key, &method, &uri, &headers, &body).await;
    let request_id = shared.lock().new_guid();
    // PurgeDeletedSecret answers 204 with no body at all.
    let mut response = if answer.status == StatusCode::NO_CONTENT {
        answer.status.into_response()
    } else {
        (answer.status, axum::Json(answer.body)).into_response()
    };
    let response_headers = response.headers_mut();
    for (name, value) in answer
        .headers
        .into_iter()
        .chain([("x-ms-request-id", request_id), ("x-ms-keyvault-service-version", "1.9.2407.1".to_string())])
    {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response_headers.insert(name, value);
        }
    }
    response
}

async fn serve(
    shared: &Shared,
    vault_key: &str,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> VaultAnswer {
    let segments: Vec<&str> = uri.path().split('/').filter(|segment| !segment.is_empty()).collect();
    let query = parse_form(uri.query().unwrap_or_default());
    let authorization = headers.get(header::AUTHORIZATION).and_then(|value| value.to_str().ok());
    // The challenge names Entra by the host the client can reach: Azure's own through the
    // proxy (the client used `<vault>.vault.azure.net`), the simulator's loopback otherwise.
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .or_else(|| uri.authority().map(|authority| authority.to_string()))
        .unwrap_or_default();
    let via_proxy =
        host.split(':').next().is_some_and(|name| name.to_ascii_lowercase().ends_with(crate::proxy::VAULT_SUFFIX));
    let authority =
        if via_proxy { format!("https://{}", crate::proxy::LOGIN_HOST) } else { shared.arm_endpoint.clone() };
    let claims = {
        let state = shared.lock();
        let challenge =
            format!("Bearer authorization=\"{authority}/{}\", resource=\"https://vault.azure.net\"", state.tenant_id);
        match token_endpoint::validate(&state, authorization, &VAULT_AUDIENCES) {
            Ok(claims) => claims,
            Err(error) => {
                let message = match error {
                    TokenError::Missing => "AKV10000: Request is missing a Bearer or PoP token.".to_string(),
                    TokenError::WrongAudience { audience } => {
                        format!("AKV10022: Invalid audience. Expected https://vault.azure.net, found: {audience}.")
                    }
                    TokenError::Expired { .. } => "AKV10032: Token expired.".to_string(),
                    TokenError::Malformed | TokenError::Unknown => "AKV10022: Invalid token.".to_string(),
                };
                let mut answer = VaultAnswer::error(StatusCode::UNAUTHORIZED, "Unauthorized", message);
                answer.headers.push(("www-authenticate", challenge));
                return answer;
            }
        }
    };
    // Key Vault authenticates first: the challenge comes before any other answer.
    let api_version = query.iter().find(|(key, _)| key == "api-version").map(|(_, value)| value.clone());
    let Some(api_version) = api_version.filter(|version| accepts_api_version(version)) else {
        return VaultAnswer::error(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            "The specified version is not recognized or missing. Consider using the latest supported version (2026-04-01).",
        );
    };
    let Some(operation) = secrets::operation(method, &segments) else {
        return VaultAnswer::error(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("The path '{}' is not served by this simulator.", uri.path()),
        );
    };
    let (claims, verdict) = {
        let mut state = shared.lock();
        let verdict = state.faults.decide(operation);
        (claims, verdict)
    };
    let delay = match &verdict {
        Verdict::Serve { delay } | Verdict::Throttle { delay, .. } | Verdict::ServerError { delay, .. } => *delay,
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match verdict {
        Verdict::Throttle { retry_after_secs, .. } => {
            let mut answer = VaultAnswer::error(
                StatusCode::TOO_MANY_REQUESTS,
                "Throttled",
                "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached",
            );
            answer.headers.push(("retry-after", retry_after_secs.to_string()));
            return answer;
        }
        Verdict::ServerError { status, .. } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return VaultAnswer::error(
                status,
                "InternalServerError",
                "The service encountered an internal error. Please retry.",
            );
        }
        Verdict::Serve { .. } => {}
    }

    let mut state = shared.lock();
    if let Err(denied) = secrets::authorize(&state, vault_key, &claims, operation) {
        return denied;
    }
    secrets::execute(&mut state, vault_key, operation, &segments, &query, &api_version, body)
}
