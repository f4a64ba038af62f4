//! What AKS checks before accepting a managed-cluster PUT, as far as this simulator models it:
//! `If-Match`/`If-None-Match` against the `eTag` (412 `PreconditionFailed`), body shape, the
//! Windows profile (required with Windows pools; `adminUsername` required), the gMSA profile
//! (`dnsServer` and `rootDomainName` together or not at all, only when enabled, DNS server an IP
//! address) and the immutable `nodeResourceGroup`; all as ARM-style 400 bodies.

use std::net::IpAddr;

use axum::http::StatusCode;
use serde_json::Value;

use crate::arm::ArmRequest;
use crate::arm::error::ArmError;

/// Strips `W/` and quotes so `"abc"`, `W/"abc"` and `abc` compare equal.
pub(crate) fn normalize_etag(raw: &str) -> &str {
    raw.trim().trim_start_matches("W/").trim_matches('"')
}

pub(super) fn check_preconditions(request: &ArmRequest<'_>, current_etag: Option<&str>) -> Result<(), ArmError> {
    if let Some(if_match) = request.header("if-match") {
        let expected = normalize_etag(if_match);
        let matches = match current_etag {
            Some(current) => expected == "*" || expected == current,
            None => false,
        };
        if !matches {
            return Err(ArmError::new(
                StatusCode::PRECONDITION_FAILED,
                "PreconditionFailed",
                format!(
                    "Operation is not allowed because the resource's eTag '{}' does not match the If-Match header '{if_match}'.",
                    current_etag.unwrap_or("")
                ),
            ));
        }
    }
    if let Some(if_none_match) = request.header("if-none-match")
        && normalize_etag(if_none_match) == "*"
        && current_etag.is_some()
    {
        return Err(ArmError::new(
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailed",
            "Operation is not allowed because the resource already exists and If-None-Match is '*'.",
        ));
    }
    Ok(())
}

/// AKS's validation of what this simulator models: body shape, Windows profile, gMSA profile,
/// immutable node resource group.
pub(crate) fn validate(body: &Value, existing: Option<&Value>) -> Result<(), ArmError> {
    let invalid = |message: String| ArmError::bad_request("InvalidParameter", message);
    if !body.is_object() || !body["properties"].is_object() {
        return Err(invalid("The parameter 'properties' is required for a managed cluster.".to_string()));
    }
    if body["location"].as_str().is_none_or(str::is_empty) {
        return Err(ArmError::bad_request(
            "LocationRequired",
            "The location property is required for this definition.",
        ));
    }
    let properties = &body["properties"];
    let pools = properties["agentPoolProfiles"].as_array();
    if existing.is_none() && pools.is_none_or(Vec::is_empty) {
        return Err(invalid(
            "The value of parameter agentPoolProfiles is invalid: at least one agent pool is required.".to_string(),
        ));
    }
    let has_windows_pool = pools
        .into_iter()
        .flatten()
        .any(|pool| pool["osType"].as_str().is_some_and(|os| os.eq_ignore_ascii_case("Windows")));
    let windows = &properties["windowsProfile"];
    if has_windows_pool && !windows.is_object() {
        return Err(invalid("WindowsProfile must be set when the cluster has Windows agent pools.".to_string()));
    }
    if windows.is_object() && windows["adminUsername"].as_str().is_none_or(str::is_empty) {
        return Err(invalid(
            "The value of parameter windowsProfile.adminUsername is invalid: it is required.".to_string(),
        ));
    }
    let gmsa = &windows["gmsaProfile"];
    if gmsa.is_object() {
        let dns_server = gmsa["dnsServer"].as_str().filter(|text| !text.is_empty());
        let root_domain = gmsa["rootDomainName"].as_str().filter(|text| !text.is_empty());
        let enabled = gmsa["enabled"].as_bool().unwrap_or(false);
        if dns_server.is_some() != root_domain.is_some() {
            return Err(invalid("The value of parameter windowsProfile.gmsaProfile is invalid: DNSServer and RootDomainName must be set together or both left empty.".to_string()));
        }
        if !enabled && dns_server.is_some() {
            return Err(invalid("The value of parameter windowsProfile.gmsaProfile is invalid: DNSServer and RootDomainName can only be set when gMSA is enabled.".to_string()));
        }
        if let Some(dns_server) = dns_server
            && dns_server.parse::<IpAddr>().is_err()
        {
            return Err(invalid(format!(
                "The value of parameter windowsProfile.gmsaProfile.dnsServer is invalid: '{dns_server}' is not an IP address."
            )));
        }
    }
    if let (Some(existing), Some(requested)) = (existing, properties["nodeResourceGroup"].as_str())
        && !existing["properties"]["nodeResourceGroup"]
            .as_str()
            .is_some_and(|current| current.eq_ignore_ascii_case(requested))
    {
        return Err(ArmError::bad_request(
            "PropertyChangeNotAllowed",
            "Changing property 'nodeResourceGroup' is not allowed.",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mk_body(gmsa: Value) -> Value {
        json!({
            "location": "eastus",
            "properties": {
                "agentPoolProfiles": [{"name": "npwin", "osType": "Windows"}],
                "windowsProfile": {"adminUsername": "azureuser", "gmsaProfile": gmsa},
            }
        })
    }

    fn code_of(result: Result<(), ArmError>) -> String {
        result.expect_err("validation error").code
    }

    #[test]
    fn gmsa_dns_server_and_root_domain_go_together() {
        assert!(validate(&mk_body(json!({"enabled": true})), None).is_ok());
        assert!(
            validate(
                &mk_body(json!({"enabled": true, "dnsServer": "10.0.0.4", "rootDomainName": "contoso.com"})),
                None
            )
            .is_ok()
        );
        assert_eq!(
            code_of(validate(&mk_body(json!({"enabled": true, "dnsServer": "10.0.0.4"})), None)),
            "InvalidParameter"
        );
        assert_eq!(
            code_of(validate(&mk_body(json!({"enabled": true, "rootDomainName": "contoso.com"})), None)),
            "InvalidParameter"
        );
        assert_eq!(
            code_of(validate(
                &mk_body(json!({"enabled": false, "dnsServer": "10.0.0.4", "rootDomainName": "c.com"})),
                None
            )),
            "InvalidParameter"
        );
        assert_eq!(
            code_of(validate(&mk_body(json!({"enabled": true, "dnsServer": "dc1", "rootDomainName": "c.com"})), None)),
            "InvalidParameter"
        );
    }

    #[test]
    fn windows_pools_require_a_windows_profile() {
        let mut body = mk_body(json!({"enabled": true}));
        body["properties"].as_object_mut().map(|properties| properties.remove("windowsProfile"));
        assert_eq!(code_of(validate(&body, None)), "InvalidParameter");
        assert_eq!(code_of(validate(&json!({"location": "eastus"}), None)), "InvalidParameter");
    }

    #[test]
    fn etag_normalization_accepts_quoted_and_weak_forms() {
        assert_eq!(normalize_etag("\"abc\""), "abc");
        assert_eq!(normalize_etag("W/\"abc\""), "abc");
        assert_eq!(normalize_etag("abc"), "abc");
    }
}
