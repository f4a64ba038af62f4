//! `check-dc-connectivity`: can the cluster's network find and reach the domain controllers?
//! (`Confirm-AksADDCConnectivity`). Added in schema 1.1; a 1.0 agent answers it with
//! `failed{undecodable_command}`.

use super::ValidationError;
use super::enable_gmsa::is_dns_name;
use serde::{Deserialize, Serialize};

/// Payload of `check-dc-connectivity`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckDcConnectivity {
    /// The DNS server the cluster uses for the domain: `IP` or `IP:port` (port 53 by default).
    pub dns_server: String,
    /// The AD DNS domain, e.g. `contoso.com`.
    pub domain: String,
    /// The DCs serve no Active Directory Web Services (port 9389): report it as a warning.
    #[serde(default)]
    pub adws_optional: bool,
    /// Per-probe timeout.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u32,
}

fn default_timeout() -> u32 {
    3
}

impl CheckDcConnectivity {
    /// The DNS server as a socket address (port 53 when none is given).
    pub fn dns_server_address(&self) -> Option<std::net::SocketAddr> {
        self.dns_server
            .parse::<std::net::SocketAddr>()
            .ok()
            .or_else(|| self.dns_server.parse::<std::net::IpAddr>().ok().map(|ip| std::net::SocketAddr::new(ip, 53)))
    }

    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.dns_server_address().is_none() {
            return Err(ValidationError::new(
                "payload.dns_server",
                format!("{:?} is not an IP address or IP:port", self.dns_server),
            ));
        }
        if !is_dns_name(&self.domain) {
            return Err(ValidationError::new("payload.domain", format!("{:?} is not a DNS name", self.domain)));
        }
        if !(1..=60).contains(&self.timeout_secs) {
            return Err(ValidationError::new("payload.timeout_secs", "must be between 1 and 60"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk(dns: &str, domain: &str) -> CheckDcConnectivity {
        CheckDcConnectivity { dns_server: dns.into(), domain: domain.into(), adws_optional: false, timeout_secs: 3 }
    }

    #[test]
    fn dns_server_takes_an_ip_with_or_without_port() {
        assert_eq!(mk("10.1.0.4", "contoso.com").dns_server_address().unwrap().port(), 53);
        assert_eq!(mk("127.0.0.1:5353", "contoso.com").dns_server_address().unwrap().port(), 5353);
        assert_eq!(mk("dc1", "contoso.com").validate().unwrap_err().field, "payload.dns_server");
        assert_eq!(mk("10.1.0.4", "contoso").validate().unwrap_err().field, "payload.domain");
    }
}
