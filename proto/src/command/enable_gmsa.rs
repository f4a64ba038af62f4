//! `enable-gmsa`: turn on `windowsProfile.gmsaProfile` on the managed cluster.
//!
//! `mode` (schema 1.3) defaults to `apply`; `dry-run` reads the cluster, plans the gmsaProfile
//! diff and reports it as `planned` without the PUT.

use super::{ValidationError, check_mode};
use crate::outcome::Mode;
use serde::{Deserialize, Serialize};

/// Payload of `enable-gmsa`. As with `az aks update --enable-windows-gmsa`, the DNS server and the
/// root domain are given together or not at all (without them AKS uses the VNet's DNS servers).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EnableGmsa {
    /// IPv4 address of the DNS server that resolves the AD domain (`--gmsa-dns-server`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_server: Option<String>,
    /// The AD root domain name (`--gmsa-root-domain-name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_domain: Option<String>,
    /// `apply` (the default, also for a payload written before schema 1.3) or `dry-run`.
    #[serde(default)]
    pub mode: Mode,
}

impl EnableGmsa {
    pub fn validate(&self) -> Result<(), ValidationError> {
        check_mode(self.mode)?;
        match (&self.dns_server, &self.root_domain) {
            (None, None) => Ok(()),
            (Some(_), None) | (None, Some(_)) => Err(ValidationError::new(
                "payload.dns_server, payload.root_domain",
                "must be given together or not at all (as --gmsa-dns-server and --gmsa-root-domain-name)",
            )),
            (Some(dns_server), Some(root_domain)) => {
                if dns_server.parse::<std::net::Ipv4Addr>().is_err() {
                    return Err(ValidationError::new(
                        "payload.dns_server",
                        format!("{dns_server:?} is not an IPv4 address"),
                    ));
                }
                if !is_dns_name(root_domain) {
                    return Err(ValidationError::new(
                        "payload.root_domain",
                        format!(
                            "{root_domain:?} is not a DNS name (labels of letters, digits and '-', at least two labels)"
                        ),
                    ));
                }
                Ok(())
            }
        }
    }
}

/// RFC 1123 host name with at least two labels (an AD DNS domain such as `contoso.com`).
pub(crate) fn is_dns_name(name: &str) -> bool {
    let labels: Vec<&str> = name.split('.').collect();
    name.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk(dns: Option<&str>, root: Option<&str>) -> EnableGmsa {
        EnableGmsa { dns_server: dns.map(String::from), root_domain: root.map(String::from), mode: Mode::Apply }
    }

    #[test]
    fn both_or_neither() {
        assert!(mk(None, None).validate().is_ok());
        assert!(mk(Some("10.1.0.4"), Some("contoso.com")).validate().is_ok());
        let err = mk(Some("10.1.0.4"), None).validate().unwrap_err();
        assert!(err.field.contains("root_domain") && err.rule.contains("together"));
    }

    #[test]
    fn bad_values_name_their_field() {
        assert_eq!(mk(Some("dc1"), Some("contoso.com")).validate().unwrap_err().field, "payload.dns_server");
        assert_eq!(mk(Some("10.1.0.4"), Some("contoso")).validate().unwrap_err().field, "payload.root_domain");
        assert_eq!(mk(Some("10.1.0.4"), Some("-a.com")).validate().unwrap_err().field, "payload.root_domain");
    }

    #[test]
    fn mode_defaults_to_apply_and_an_unknown_mode_is_refused() {
        let older: EnableGmsa = serde_json::from_value(serde_json::json!({"dns_server": "10.1.0.4"})).unwrap();
        assert_eq!(older.mode, Mode::Apply, "a payload of an older coordinator applies, as it always did");
        let dry: EnableGmsa = serde_json::from_value(serde_json::json!({"mode": "dry-run"})).unwrap();
        assert_eq!(dry.mode, Mode::DryRun);
        let newer: EnableGmsa = serde_json::from_value(serde_json::json!({"mode": "simulate"})).unwrap();
        assert_eq!(newer.mode, Mode::Unknown, "decoded, not failed");
        assert_eq!(newer.validate().unwrap_err().field, "payload.mode");
    }
}
