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
