//! Following a Resource Manager long-running operation to its terminal state.
//!
//! ARM's async pattern (Azure Resource Manager RPC, "Asynchronous operations"): a PUT/PATCH
//! answers 200/201/202 with `Azure-AsyncOperation` (poll it; its body's `status` is
//! `InProgress`, `Succeeded`, `Failed` or `Canceled`, with `error` on failure) and/or
//! `Location` (poll it; 202 while running, 200/204 when done). Without either header, the
//! resource's own `properties.provisioningState` says whether it is still working. Every poll
//! honours `Retry-After`. The choice of what to poll and how to read a status is pure.

use crate::arm::{ArmClient, ArmResponse};
use crate::error::{Error, ErrorKind, Operation};
use crate::policy::retry_after;
use azure_core::http::{Method, Url};
use serde_json::Value;
use std::time::{Duration, Instant};

/// What to poll after the initial response of a long-running write.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PollTarget {
    /// The `Azure-AsyncOperation` status URL.
    AsyncOperation(String),
    /// The `Location` URL.
    Location(String),
    /// No header and a non-terminal `provisioningState`: poll the resource itself.
    Resource,
    /// Already terminal.
    Done(Terminal),
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Terminal {
    /// `Succeeded`.
    Succeeded,
    /// `Failed` or `Canceled`, with the ARM error code and message when given.
    Failed { state: String, code: String, message: String },
}

/// The state reported by one status body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PollState {
    Running,
    Ended(Terminal),
}

/// Decides what to poll from the initial response's status, headers and body.
pub(crate) fn poll_target(
    status: u16,
    async_operation: Option<&str>,
    location: Option<&str>,
    body: &Value,
) -> PollTarget {
    if let Some(url) = async_operation {
        return PollTarget::AsyncOperation(url.to_string());
    }
    if let (202, Some(url)) = (status, location) {
        return PollTarget::Location(url.to_string());
    }
    match provisioning_state(body) {
        Some(state) => match read_state(state, body.pointer("/properties/error").or_else(|| body.get("error"))) {
            PollState::Running => PollTarget::Resource,
            PollState::Ended(terminal) => PollTarget::Done(terminal),
        },
        None if status == 202 => PollTarget::Resource,
        None => PollTarget::Done(Terminal::Succeeded),
    }
}

/// `properties.provisioningState` of a resource body.
pub(crate) fn provisioning_state(body: &Value) -> Option<&str> {
    body.pointer("/properties/provisioningState").and_then(Value::as_str)
}

/// Reads an `Azure-AsyncOperation` status body (`{"status": ..., "error": {...}}`).
pub(crate) fn read_operation_status(body: &Value) -> PollState {
    match body.get("status").and_then(Value::as_str) {
        Some(state) => read_state(state, body.get("error")),
        None => PollState::Running,
    }
}

/// Maps a status / provisioning state (case-insensitive) to running or terminal.
fn read_state(state: &str, error: Option<&Value>) -> PollState {
    if state.eq_ignore_ascii_case("Succeeded") {
        return PollState::Ended(Terminal::Succeeded);
    }
    if state.eq_ignore_ascii_case("Failed") || state.eq_ignore_ascii_case("Canceled") {
        let field =
            |name: &str| error.and_then(|e| e.get(name)).and_then(Value::as_str).unwrap_or_default().to_string();
        return PollState::Ended(Terminal::Failed {
            state: state.to_string(),
            code: field("code"),
            message: field("message"),
        });
    }
    PollState::Running
}

/// Polls until the operation is terminal or `timeout` passes; returns how it ended.
pub(crate) async fn follow(
    arm: &ArmClient,
    resource: &str,
    resource_url: Url,
    initial: &ArmResponse,
    poll_interval: Duration,
    timeout: Duration,
) -> Result<Terminal, Error> {
    let body = initial.json_value(Operation::PollOperation, resource)?;
    let target = poll_target(initial.status, initial.header("azure-asyncoperation"), initial.header("location"), &body);
    let (poll_url, target_kind) = match target {
        PollTarget::Done(terminal) => return Ok(terminal),
        PollTarget::AsyncOperation(href) => (arm.absolute(Operation::PollOperation, resource, &href)?, Target::Status),
        PollTarget::Location(href) => (arm.absolute(Operation::PollOperation, resource, &href)?, Target::Location),
        PollTarget::Resource => (resource_url, Target::Resource),
    };
    let started = Instant::now();
    let mut wait = retry_after(&initial.headers).unwrap_or(poll_interval);
    loop {
        if started.elapsed() + wait > timeout {
            let detail = format!("operation still running after {:?}", started.elapsed() + wait);
            return Err(Error::new(Operation::PollOperation, resource, ErrorKind::Timeout, detail));
        }
        tokio::time::sleep(wait).await;
        let response = arm.send(Operation::PollOperation, resource, Method::Get, poll_url.clone(), None, None).await?;
        wait = retry_after(&response.headers).unwrap_or(poll_interval);
        let state = match target_kind {
            Target::Status => {
                let response = response.into_success(Operation::PollOperation, resource)?;
                read_operation_status(&response.json_value(Operation::PollOperation, resource)?)
            }
            Target::Location if response.status == 202 => PollState::Running,
            Target::Location => {
                let response = response.into_success(Operation::PollOperation, resource)?;
                match provisioning_state(&response.json_value(Operation::PollOperation, resource)?) {
                    Some(state) => read_state(state, None),
                    None => PollState::Ended(Terminal::Succeeded),
                }
            }
            Target::Resource => {
                let response = response.into_success(Operation::PollOperation, resource)?;
                let body = response.json_value(Operation::PollOperation, resource)?;
                match provisioning_state(&body) {
                    Some(state) => read_state(state, body.pointer("/properties/error")),
                    None => PollState::Ended(Terminal::Succeeded),
                }
            }
        };
        if let PollState::Ended(terminal) = state {
            return Ok(terminal);
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Target {
    Status,
    Location,
    Resource,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn async_operation_header_wins() {
        let target = poll_target(201, Some("https://arm/op/1"), Some("https://arm/loc/1"), &json!({}));
        assert_eq!(target, PollTarget::AsyncOperation("https://arm/op/1".to_string()));
    }

    #[test]
    fn location_is_polled_for_202() {
        assert_eq!(
            poll_target(202, None, Some("https://arm/loc"), &Value::Null),
            PollTarget::Location("https://arm/loc".to_string())
        );
    }

    #[test]
    fn provisioning_state_decides_without_headers() {
        let updating = json!({"properties": {"provisioningState": "Updating"}});
        assert_eq!(poll_target(200, None, None, &updating), PollTarget::Resource);
        let done = json!({"properties": {"provisioningState": "Succeeded"}});
        assert_eq!(poll_target(200, None, None, &done), PollTarget::Done(Terminal::Succeeded));
        assert_eq!(poll_target(201, None, None, &json!({"name": "x"})), PollTarget::Done(Terminal::Succeeded));
    }

    #[test]
    fn operation_status_bodies_are_read() {
        assert_eq!(read_operation_status(&json!({"status": "InProgress"})), PollState::Running);
        assert_eq!(read_operation_status(&json!({"status": "succeeded"})), PollState::Ended(Terminal::Succeeded));
        let failed = json!({"status": "Failed", "error": {"code": "ReconcileFailed", "message": "boom"}});
        assert_eq!(
            read_operation_status(&failed),
            PollState::Ended(Terminal::Failed {
                state: "Failed".to_string(),
                code: "ReconcileFailed".to_string(),
                message: "boom".to_string()
            })
        );
    }
}
