//! The mutation log: every successful write the simulator served, so tests assert on effects
//! ("exactly one role assignment was created") rather than on calls. Bodies are redacted: secret
//! values and passwords never enter the log.

use serde_json::Value;
use time::OffsetDateTime;

use crate::config::Operation;

/// Text that stands in for a redacted value.
pub const REDACTED: &str = "<redacted>";

/// One successful write.
#[derive(Clone, Debug, PartialEq)]
pub struct Mutation {
    /// Position in the log, from 0.
    pub seq: u64,
    /// Wall-clock time the write was applied.
    pub at: OffsetDateTime,
    /// HTTP method of the request.
    pub method: String,
    /// Id of the written resource: an ARM id, or `https://127.0.0.1:<port>/secrets/<name>/<version>` for secrets.
    pub resource_id: String,
    /// Which operation wrote it.
    pub operation: Operation,
    /// Whether the stored state differs from before the write (a PUT of the same body is `false`).
    pub changed: bool,
    /// The request body, with secret values and passwords replaced by [`REDACTED`].
    pub body: Value,
}

/// Replaces every value that may carry a secret with [`REDACTED`], recursively: Key Vault's
/// `value`, and any `adminPassword`, `secret`, `clientSecret` or `password` field.
pub fn redact(body: &Value) -> Value {
    match body {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| {
                    let lowered = key.to_ascii_lowercase();
                    let sensitive =
                        matches!(lowered.as_str(), "value" | "adminpassword" | "secret" | "clientsecret" | "password");
                    if sensitive && !value.is_null() {
                        (key.clone(), Value::String(REDACTED.to_string()))
                    } else {
                        (key.clone(), redact(value))
                    }
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redact_hides_secret_values_and_passwords_at_any_depth() {
        let body = json!({
            "value": "CONTOSO\\svc:hunter2",
            "properties": {"windowsProfile": {"adminUsername": "azureuser", "adminPassword": "P@ss"}},
            "list": [{"secret": "s"}]
        });
        let redacted = redact(&body);
        let text = redacted.to_string();
        assert!(!text.contains("hunter2"));
        assert!(!text.contains("P@ss"));
        assert!(!text.contains("\"s\""));
        assert_eq!(redacted["properties"]["windowsProfile"]["adminUsername"], "azureuser");
    }
}
