//! Where password resets go: the domain's PDC emulator.
//!
//! Other DCs forward a failed bind to the PDC emulator, which therefore knows a new password
//! first; resetting there means a bind anywhere right after the reset is judged with the new
//! password. The role owner is the domain head's `fSMORoleOwner` (an NTDS Settings DN); its
//! parent is the server object, whose `dNSHostName` names the DC. With one DC it is the one
//! the session is bound to (`dsServiceName` of the rootDSE).

use super::facts::naming_contexts;
use super::session::{Session, text};
use crate::error::AdError;

/// Where the PDC emulator is, relative to the DC a session is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PdcEmulator {
    /// The connected DC holds the role.
    Connected,
    /// Another DC does; its `dNSHostName`.
    Other { host: String },
}

pub(super) async fn locate(session: &mut Session) -> Result<PdcEmulator, AdError> {
    let domain = naming_contexts(session).await?.domain;
    let root_dse =
        session.read("", &["dsServiceName"]).await?.ok_or_else(|| AdError::NotFound { what: "rootDSE".to_string() })?;
    let connected = text(&root_dse, "dsServiceName").unwrap_or_default().to_string();
    let head = session
        .read(&domain, &["fSMORoleOwner"])
        .await?
        .ok_or_else(|| AdError::NotFound { what: format!("domain head {domain}") })?;
    let owner = text(&head, "fSMORoleOwner").ok_or_else(|| AdError::Attribute {
        object: domain.clone(),
        attribute: "fSMORoleOwner",
        reason: "missing".to_string(),
    })?;
    if owner.eq_ignore_ascii_case(&connected) {
        return Ok(PdcEmulator::Connected);
    }
    let server_dn = server_of(owner).ok_or_else(|| AdError::Attribute {
        object: domain.clone(),
        attribute: "fSMORoleOwner",
        reason: format!("'{owner}' is not an NTDS Settings DN"),
    })?;
    let server = session
        .read(server_dn, &["dNSHostName"])
        .await?
        .ok_or_else(|| AdError::NotFound { what: format!("PDC emulator server {server_dn}") })?;
    let host = text(&server, "dNSHostName").ok_or_else(|| AdError::Attribute {
        object: server_dn.to_string(),
        attribute: "dNSHostName",
        reason: "missing".to_string(),
    })?;
    Ok(PdcEmulator::Other { host: host.to_string() })
}

/// `CN=NTDS Settings,CN=DC1,CN=Servers,…` → `CN=DC1,CN=Servers,…`.
fn server_of(ntds_settings_dn: &str) -> Option<&str> {
    let (first, rest) = ntds_settings_dn.split_once(',')?;
    first.trim().eq_ignore_ascii_case("CN=NTDS Settings").then_some(rest.trim_start())
}

/// `url` with its host replaced by `host`, scheme and port kept: `ldaps://dc1:636` → `ldaps://pdc:636`.
pub(super) fn url_with_host(url: &str, host: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split('/').next().unwrap_or_default();
    let port = if authority.starts_with('[') {
        authority.split_once("]:").map(|(_, port)| port)
    } else {
        authority.rsplit_once(':').map(|(_, port)| port)
    };
    Some(match port {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_is_the_parent_of_ntds_settings() {
        let owner = "CN=NTDS Settings,CN=DC1,CN=Servers,CN=Default-First-Site-Name,CN=Sites,CN=Configuration,DC=c,DC=t";
        assert_eq!(
            server_of(owner),
            Some("CN=DC1,CN=Servers,CN=Default-First-Site-Name,CN=Sites,CN=Configuration,DC=c,DC=t")
        );
        assert_eq!(server_of("CN=DC1,CN=Servers"), None);
    }

    #[test]
    fn the_pdc_url_keeps_scheme_and_port() {
        assert_eq!(url_with_host("ldaps://127.0.0.1:636", "dc2.contoso.test").unwrap(), "ldaps://dc2.contoso.test:636");
        assert_eq!(url_with_host("ldap://dc1.contoso.test", "dc2").unwrap(), "ldap://dc2");
        assert_eq!(url_with_host("ldaps://[::1]:3269/", "dc2").unwrap(), "ldaps://dc2:3269");
        assert_eq!(url_with_host("dc1:636", "dc2"), None);
    }
}
