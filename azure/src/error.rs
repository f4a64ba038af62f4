//! The one error type of the adapter: which operation failed, on which resource, and a kind to match on.
//!
//! Every failure names the Azure resource id (or vault URL) and the operation (`GetCluster`,
//! `PutRoleAssignment`, ...), so an operator reading a result on the bus knows what to look at
//! without a log. Callers branch on [`Error::kind`], never on the message text.
//!
//! **Invariant:** no secret value is ever put into an error: details come from ARM/Key Vault
//! error bodies (`code` and `message`), never from request bodies.

use std::fmt;

/// What a caller can do about a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The resource does not exist (404).
    NotFound,
    /// The caller's identity lacks permission (401/403).
    Forbidden,
    /// The request or the observed resource does not satisfy a rule (bad settings, a cluster
    /// without a Windows profile or Windows node pool, ARM 400).
    Validation,
    /// Another writer kept winning: 409 that is not "operation in progress", or 412 after the
    /// re-read budget was spent.
    Conflict,
    /// 429 or "operation in progress" until the retry budget was spent.
    Throttled,
    /// Every attempt timed out, or a long-running operation did not finish in time.
    Timeout,
    /// The service failed (5xx after retries, or a long-running operation ended `Failed`/`Canceled`).
    Failed,
    /// The network could not be reached (DNS, TLS, connection reset).
    Transport,
    /// No token could be obtained for the configured credential.
    Credential,
    /// The adapter configuration is unusable (bad URL, unreadable CA PEM).
    Config,
    /// A response could not be decoded into the fields the adapter needs.
    Decode,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::Validation => "invalid",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Throttled => "throttled",
            ErrorKind::Timeout => "timed out",
            ErrorKind::Failed => "failed",
            ErrorKind::Transport => "transport error",
            ErrorKind::Credential => "credential error",
            ErrorKind::Config => "configuration error",
            ErrorKind::Decode => "undecodable response",
        };
        f.write_str(text)
    }
}

/// The Azure call (or local step) that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Operation {
    /// Building the HTTP transport or the credential from configuration.
    Connect,
    /// Validating the gMSA settings before any call.
    ValidateSettings,
    /// `GET managedClusters/{name}`.
    GetCluster,
    /// `PUT managedClusters/{name}` with `If-Match`.
    PutCluster,
    /// Polling an `Azure-AsyncOperation` or `Location` URL.
    PollOperation,
    /// `GET vaults/{name}`.
    GetVault,
    /// `PUT vaults/{name}` (create when absent).
    PutVault,
    /// `PUT vaults/{name}/accessPolicies/add`.
    AddAccessPolicy,
    /// `GET` / `PUT roleAssignments/{name}`.
    PutRoleAssignment,
    /// `GET roleAssignments?$filter=atScope()` at a vault.
    ListRoleAssignments,
    /// `GET` / `PUT userAssignedIdentities/{name}`.
    PutIdentity,
    /// `GET` / `PATCH virtualMachineScaleSets`.
    AttachIdentity,
    /// Key Vault `GET secrets/{name}`.
    GetSecret,
    /// Key Vault `PUT secrets/{name}`.
    SetSecret,
    /// `GET virtualMachineScaleSets` of a node resource group (reading pool identities).
    ListScaleSets,
    /// `PUT vaults/{name}/accessPolicies/remove`.
    RemoveAccessPolicy,
    /// `GET` / `DELETE roleAssignments/{name}`.
    DeleteRoleAssignment,
    /// `PATCH virtualMachineScaleSets` removing a user-assigned identity.
    DetachIdentity,
    /// `GET` / `DELETE userAssignedIdentities/{name}`.
    DeleteIdentity,
    /// Key Vault `DELETE secrets/{name}` (and `GET deletedsecrets/{name}`).
    DeleteSecret,
    /// Key Vault `DELETE deletedsecrets/{name}`.
    PurgeSecret,
    /// Key Vault `GET secrets/{name}/versions`.
    ListSecretVersions,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A failed adapter operation.
#[derive(Debug, thiserror::Error)]
#[error("{operation} {resource}: {kind}: {detail}")]
pub struct Error {
    operation: Operation,
    resource: String,
    kind: ErrorKind,
    detail: String,
    #[source]
    source: Option<Box<azure_core::Error>>,
}

impl Error {
    /// An error without an underlying SDK error.
    pub fn new(operation: Operation, resource: impl Into<String>, kind: ErrorKind, detail: impl Into<String>) -> Self {
        Error { operation, resource: resource.into(), kind, detail: detail.into(), source: None }
    }

    /// An error caused by an `azure_core` error (kept as the `source`).
    pub fn with_source(
        operation: Operation,
        resource: impl Into<String>,
        kind: ErrorKind,
        detail: impl Into<String>,
        source: azure_core::Error,
    ) -> Self {
        Error { operation, resource: resource.into(), kind, detail: detail.into(), source: Some(Box::new(source)) }
    }

    /// Classifies an `azure_core` error from the SDK (Key Vault client, credentials).
    pub fn from_sdk(operation: Operation, resource: impl Into<String>, source: azure_core::Error) -> Self {
        use azure_core::error::ErrorKind as Sdk;
        let (kind, detail) = match source.kind() {
            Sdk::HttpResponse { status, error_code, .. } => {
                let code = error_code.clone().unwrap_or_default();
                (kind_for_status(u16::from(*status), &code), format!("HTTP {} {code}", u16::from(*status)))
            }
            Sdk::Credential => (ErrorKind::Credential, "no token for the configured credential".to_string()),
            Sdk::Io | Sdk::Connection => (ErrorKind::Transport, "request did not complete".to_string()),
            Sdk::DataConversion => (ErrorKind::Decode, "response could not be decoded".to_string()),
            _ => (ErrorKind::Failed, "SDK error".to_string()),
        };
        Error::with_source(operation, resource, kind, detail, source)
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The operation that failed.
    pub fn operation(&self) -> Operation {
        self.operation
    }

    /// The resource id or URL the operation was about.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The service's error code and message, or the local rule that was broken.
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

/// Maps an HTTP status and ARM error code to what the caller can do about it.
pub(crate) fn kind_for_status(status: u16, code: &str) -> ErrorKind {
    match status {
        404 => ErrorKind::NotFound,
        401 | 403 => ErrorKind::Forbidden,
        400 | 422 => ErrorKind::Validation,
        408 => ErrorKind::Timeout,
        409 if code.eq_ignore_ascii_case("OperationNotAllowed") => ErrorKind::Throttled,
        409 | 412 => ErrorKind::Conflict,
        429 => ErrorKind::Throttled,
        _ if status >= 500 => ErrorKind::Failed,
        _ => ErrorKind::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_operation_resource_and_rule() {
        let error = Error::new(Operation::GetCluster, "/subscriptions/s/rg/c", ErrorKind::NotFound, "ResourceNotFound");
        let text = error.to_string();
        assert!(text.contains("GetCluster") && text.contains("/subscriptions/s/rg/c") && text.contains("not found"));
    }

    #[test]
    fn statuses_map_to_kinds_callers_match_on() {
        assert_eq!(kind_for_status(404, "ResourceNotFound"), ErrorKind::NotFound);
        assert_eq!(kind_for_status(403, "AuthorizationFailed"), ErrorKind::Forbidden);
        assert_eq!(kind_for_status(409, "OperationNotAllowed"), ErrorKind::Throttled);
        assert_eq!(kind_for_status(409, "RoleAssignmentExists"), ErrorKind::Conflict);
        assert_eq!(kind_for_status(412, "PreconditionFailed"), ErrorKind::Conflict);
        assert_eq!(kind_for_status(429, ""), ErrorKind::Throttled);
        assert_eq!(kind_for_status(503, ""), ErrorKind::Failed);
    }
}
