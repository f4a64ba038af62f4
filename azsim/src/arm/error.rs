//! ARM's error envelope `{"error":{"code","message"}}` (the common-types `ErrorResponse` every
//! resource-manager spec references) and the response type ARM handlers return.

use axum::http::StatusCode;
use serde_json::{Value, json};

/// An ARM error answer.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ArmError {
    pub(crate) status: StatusCode,
    pub(crate) code: String,
    pub(crate) message: String,
    /// `Retry-After` seconds, for 429.
    pub(crate) retry_after_secs: Option<u64>,
    /// Extra headers (`WWW-Authenticate` on 401).
    pub(crate) headers: Vec<(String, String)>,
}

impl ArmError {
    pub(crate) fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ArmError {
            status,
            code: code.to_string(),
            message: message.into(),
            retry_after_secs: None,
            headers: Vec::new(),
        }
    }

    pub(crate) fn bad_request(code: &str, message: impl Into<String>) -> Self {
        ArmError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub(crate) fn conflict(code: &str, message: impl Into<String>) -> Self {
        ArmError::new(StatusCode::CONFLICT, code, message)
    }

    /// `ResourceNotFound` for `{type}/{name}` under a resource group, worded as ARM words it.
    pub(crate) fn resource_not_found(resource_type: &str, name: &str, resource_group: &str) -> Self {
        ArmError::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!(
                "The Resource '{resource_type}/{name}' under resource group '{resource_group}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
            ),
        )
    }

    pub(crate) fn resource_group_not_found(resource_group: &str) -> Self {
        ArmError::new(
            StatusCode::NOT_FOUND,
            "ResourceGroupNotFound",
            format!("Resource group '{resource_group}' could not be found."),
        )
    }

    pub(crate) fn throttled(code: &str, message: impl Into<String>, retry_after_secs: u64) -> Self {
        ArmError {
            retry_after_secs: Some(retry_after_secs),
            ..ArmError::new(StatusCode::TOO_MANY_REQUESTS, code, message)
        }
    }

    pub(crate) fn body(&self) -> Value {
        json!({"error": {"code": self.code, "message": self.message}})
    }
}

/// A successful ARM answer.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ArmResponse {
    pub(crate) status: StatusCode,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Option<Value>,
}

impl ArmResponse {
    pub(crate) fn json(status: StatusCode, body: Value) -> Self {
        ArmResponse { status, headers: Vec::new(), body: Some(body) }
    }

    pub(crate) fn ok(body: Value) -> Self {
        ArmResponse::json(StatusCode::OK, body)
    }

    pub(crate) fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

/// What ARM handlers return.
pub(crate) type ArmResult = Result<ArmResponse, ArmError>;
