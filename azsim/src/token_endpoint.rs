//! HTTP side of the Entra token endpoint: `POST /{tenant}/oauth2/v2.0/token`, answered with
//! `{"token_type":"Bearer","expires_in","ext_expires_in","access_token"}` (the fields azure_identity
//! 1.x reads) or Entra's error body. Also the one place tokens are minted and validated.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use time::OffsetDateTime;

use crate::config::Operation;
use crate::faults::Verdict;
use crate::sim::Shared;
use crate::state::{State, rfc3339};
use crate::token::{self, Claims, TokenError};

/// `GET /{tenant}/v2.0/.well-known/openid-configuration` (and the v1 path without `v2.0`): the
/// Entra discovery document MSAL and azure-identity fetch before their first token request,
/// its endpoints on `host` (the name the client used: `127.0.0.1:<port>` directly, or
/// `login.microsoftonline.com` through the proxy). `common`/`organizations` answer with
/// Entra's `{tenantid}` placeholder; another tenant gets AADSTS90002.
pub(crate) fn openid_configuration(state: &State, host: &str, tenant: &str) -> Response {
    let known = tenant.eq_ignore_ascii_case(&state.tenant_id);
    let multi = ["common", "organizations"].iter().any(|name| tenant.eq_ignore_ascii_case(name));
    if !known && !multi {
        let body = json!({"error": "invalid_tenant", "error_description": format!("AADSTS90002: Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."), "error_codes": [90002]});
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    }
    let issuer_tenant = if known { state.tenant_id.clone() } else { "{tenantid}".to_string() };
    let base = format!("https://{host}/{tenant}");
    let body = json!({
        "token_endpoint": format!("{base}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("https://{host}/{tenant}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("https://{host}/{issuer_tenant}/v2.0"),
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
        "authorization_endpoint": format!("{base}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{base}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{base}/oauth2/v2.0/logout"),
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "nonce", "tid", "ver", "oid"],
        "kerberos_endpoint": format!("{base}/kerberos"),
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// `GET /common/discovery/instance`: Entra's instance-discovery answer, naming `host` as the
/// one alias of itself (MSAL asks before trusting an authority it does not know).
pub(crate) fn instance_discovery(host: &str, tenant: &str) -> Response {
    let body = json!({
        "tenant_discovery_endpoint": format!("https://{host}/{tenant}/v2.0/.well-known/openid-configuration"),
        "api-version": "1.1",
        "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// Mints a token for `object_id`/`client_id` with `audience` and remembers its `jti`.
pub(crate) fn issue(state: &mut State, object_id: &str, client_id: &str, audience: &str) -> String {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let jti = state.new_guid();
    let claims = Claims {
        aud: audience.to_string(),
        iss: format!("https://sts.windows.net/{}/", state.tenant_id),
        tid: state.tenant_id.clone(),
        oid: object_id.to_string(),
        appid: client_id.to_string(),
        sub: object_id.to_string(),
        iat: now,
        nbf: now,
        exp: now + state.token_lifetime.as_secs() as i64,
        jti: jti.clone(),
    };
    state.issued_tokens.insert(jti);
    token::encode(&claims)
}

/// Validates a bearer header value: issued here, not expired, audience among `audiences`.
pub(crate) fn validate(state: &State, authorization: Option<&str>, audiences: &[&str]) -> Result<Claims, TokenError> {
    let raw = token::bearer(authorization)?;
    let claims = token::decode(raw)?;
    if !state.issued_tokens.contains(&claims.jti) {
        return Err(TokenError::Unknown);
    }
    if claims.exp <= OffsetDateTime::now_utc().unix_timestamp() {
        return Err(TokenError::Expired { exp: claims.exp });
    }
    if !audiences.iter().any(|audience| audience.eq_ignore_ascii_case(&claims.aud)) {
        return Err(TokenError::WrongAudience { audience: claims.aud });
    }
    Ok(claims)
}

/// Serves one token request for `tenant`.
pub(crate) async fn handle(shared: &Shared, tenant: &str, body: &[u8]) -> Response {
    let form = token::parse_form(&String::from_utf8_lossy(body));
    let verdict = shared.lock().faults.decide(Operation::Token);
    let delay = match &verdict {
        Verdict::Serve { delay } | Verdict::Throttle { delay, .. } | Verdict::ServerError { delay, .. } => *delay,
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let now = rfc3339(OffsetDateTime::now_utc());
    let mut state = shared.lock();
    let trace_id = state.new_guid();
    match verdict {
        Verdict::Throttle { retry_after_secs, .. } => {
            let body = json!({"error": "temporarily_unavailable", "error_description": "AADSTS50196: The server terminated an operation because it encountered a client request loop.", "error_codes": [50196], "timestamp": now, "trace_id": trace_id, "correlation_id": trace_id});
            let mut response = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
            if let Ok(value) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            return response;
        }
        Verdict::ServerError { status, .. } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = json!({"error": "temporarily_unavailable", "error_description": "AADSTS90033: A transient error has occurred. Please try again.", "error_codes": [90033], "timestamp": now, "trace_id": trace_id, "correlation_id": trace_id});
            return (status, axum::Json(body)).into_response();
        }
        Verdict::Serve { .. } => {}
    }
    let tenant_id = state.tenant_id.clone();
    let granted = {
        let clients = &state.clients;
        token::grant(tenant, &tenant_id, &form, |client_id| clients.get(&client_id.to_ascii_lowercase()))
            .map(|(client_id, client, audience)| (client_id, client.object_id.clone(), audience))
    };
    match granted {
        Ok((client_id, object_id, audience)) => {
            let access_token = issue(&mut state, &object_id, &client_id, &audience);
            let lifetime = state.token_lifetime.as_secs();
            tracing::debug!(%client_id, %audience, "azsim issued a token");
            let body = json!({
                "token_type": "Bearer",
                "expires_in": lifetime,
                "ext_expires_in": lifetime,
                "access_token": access_token,
            });
            (StatusCode::OK, axum::Json(body)).into_response()
        }
        Err(error) => {
            let status = StatusCode::from_u16(error.status).unwrap_or(StatusCode::BAD_REQUEST);
            (status, axum::Json(error.body(&trace_id, &now))).into_response()
        }
    }
}
