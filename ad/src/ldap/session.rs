//! One bound LDAP connection: TLS setup (verification on, optional CA bundle), connect and bind
//! under timeouts, and the few typed search/add/modify calls the operations need.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Mod, Scope, SearchEntry};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::LdapConfig;
use crate::error::AdError;

/// LDAP result code `noSuchObject`.
const NO_SUCH_OBJECT: u32 = 32;

/// Builds the rustls configuration trusting exactly the certificates in `path` (PEM), on ring.
pub(super) fn client_config_with_ca(path: &Path) -> Result<Arc<rustls::ClientConfig>, AdError> {
    let ca_error = |reason: String| AdError::CaBundle { path: path.display().to_string(), reason };
    let pem = std::fs::read(path).map_err(|error| ca_error(error.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(&pem) {
        let certificate = certificate.map_err(|error| ca_error(error.to_string()))?;
        roots.add(certificate).map_err(|error| ca_error(error.to_string()))?;
    }
    if roots.is_empty() {
        return Err(ca_error("no CERTIFICATE block".to_string()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| ca_error(error.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A connection bound as one identity; unbound on [`Session::close`].
pub(super) struct Session {
    ldap: Ldap,
    operation_timeout: std::time::Duration,
}

impl Session {
    /// Connects to `config.url` and binds as `who` with `password`, each under its timeout.
    /// The caller has checked that the connection is encrypted.
    pub(super) async fn open(
        config: &LdapConfig,
        who: &str,
        password: &gmsa::SecretString,
    ) -> Result<Session, AdError> {
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(config.connect_timeout)
            .set_starttls(config.start_tls && config.url.starts_with("ldap://"));
        if let Some(tls) = &config.tls {
            settings = settings.set_config(tls.clone());
        }
        // ldap3 applies the connect timeout to TCP connect, StartTLS and the TLS handshake together.
        let (connection, mut ldap) = LdapConnAsync::with_settings(settings, &config.url)
            .await
            .map_err(|source| AdError::Connect { url: config.url.clone(), source: Box::new(source) })?;
        tokio::spawn(async move {
            if let Err(error) = connection.drive().await {
                tracing::debug!(%error, "LDAP connection ended with an error");
            }
        });
        let bind_error = |source| AdError::Bind { who: who.to_string(), source: Box::new(source) };
        ldap.with_timeout(config.operation_timeout)
            .simple_bind(who, password.expose())
            .await
            .and_then(|result| result.success())
            .map_err(bind_error)?;
        Ok(Session { ldap, operation_timeout: config.operation_timeout })
    }

    /// Searches and returns the entries (referrals dropped). A missing base is an empty result.
    pub(super) async fn search(
        &mut self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<SearchEntry>, AdError> {
        let search_error = |source| AdError::Search { base: base.to_string(), source: Box::new(source) };
        let result = self
            .ldap
            .with_timeout(self.operation_timeout)
            .search(base, scope, filter, attrs.to_vec())
            .await
            .map_err(search_error)?;
        if result.1.rc == NO_SUCH_OBJECT {
            return Ok(Vec::new());
        }
        let (entries, _) = result.success().map_err(search_error)?;
        Ok(entries.into_iter().filter(|entry| !entry.is_ref()).map(SearchEntry::construct).collect())
    }

    /// Reads one object by DN (base search); `None` when it does not exist.
    pub(super) async fn read(&mut self, dn: &str, attrs: &[&str]) -> Result<Option<SearchEntry>, AdError> {
        Ok(self.search(dn, Scope::Base, "(objectClass=*)", attrs).await?.into_iter().next())
    }

    /// Adds an object with the given attributes.
    pub(super) async fn add(&mut self, dn: &str, attributes: Vec<(Vec<u8>, HashSet<Vec<u8>>)>) -> Result<(), AdError> {
        let add_error = |source| AdError::Add { dn: dn.to_string(), source: Box::new(source) };
        self.ldap
            .with_timeout(self.operation_timeout)
            .add(dn, attributes)
            .await
            .and_then(|result| result.success())
            .map_err(add_error)?;
        Ok(())
    }

    /// Replaces the values of attributes of one object in one modify operation.
    pub(super) async fn replace(
        &mut self,
        dn: &str,
        attribute: &'static str,
        values: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Result<(), AdError> {
        let modify_error = |source| AdError::Modify { dn: dn.to_string(), attribute, source: Box::new(source) };
        let mods = values.into_iter().map(|(name, value)| Mod::Replace(name, HashSet::from([value]))).collect();
        self.ldap
            .with_timeout(self.operation_timeout)
            .modify(dn, mods)
            .await
            .and_then(|result| result.success())
            .map_err(modify_error)?;
        Ok(())
    }

    /// Deletes one (leaf) object.
    pub(super) async fn delete(&mut self, dn: &str) -> Result<(), AdError> {
        let delete_error = |source| AdError::Delete { dn: dn.to_string(), source: Box::new(source) };
        self.ldap
            .with_timeout(self.operation_timeout)
            .delete(dn)
            .await
            .and_then(|result| result.success())
            .map_err(delete_error)?;
        Ok(())
    }

    /// Unbinds; errors are irrelevant once the work is done.
    pub(super) async fn close(mut self) {
        let _ = self.ldap.unbind().await;
    }
}

/// The first value of a text attribute (attribute names compare case-insensitively).
pub(super) fn text<'a>(entry: &'a SearchEntry, name: &str) -> Option<&'a str> {
    entry
        .attrs
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .and_then(|(_, values)| values.first())
        .map(String::as_str)
}

/// All values of a text attribute.
pub(super) fn texts<'a>(entry: &'a SearchEntry, name: &str) -> Vec<&'a str> {
    entry
        .attrs
        .iter()
        .filter(|(key, _)| key.eq_ignore_ascii_case(name))
        .flat_map(|(_, values)| values.iter().map(String::as_str))
        .collect()
}

/// The first value of a binary attribute; ldap3 files values that happen to be valid UTF-8
/// under `attrs`, so both maps are consulted.
pub(super) fn binary(entry: &SearchEntry, name: &str) -> Option<Vec<u8>> {
    let from_binary = entry
        .bin_attrs
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .and_then(|(_, values)| values.first())
        .cloned();
    from_binary.or_else(|| text(entry, name).map(|value| value.as_bytes().to_vec()))
}

/// All values of a binary attribute. ldap3 files an attribute under `attrs` when every value
/// happens to be valid UTF-8 (a `tokenGroups` of BUILTIN SIDs, say) and under `bin_attrs`
/// otherwise, so both maps are consulted; the text form is the bytes unchanged.
pub(super) fn binaries(entry: &SearchEntry, name: &str) -> Vec<Vec<u8>> {
    let from_binary = entry
        .bin_attrs
        .iter()
        .filter(|(key, _)| key.eq_ignore_ascii_case(name))
        .flat_map(|(_, values)| values.iter().cloned());
    let from_text = texts(entry, name).into_iter().map(|value| value.as_bytes().to_vec());
    from_binary.chain(from_text).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn binary_values_are_found_whichever_map_ldap3_filed_them_in() {
        // BUILTIN\Administrators (S-1-5-32-544) is valid UTF-8; a domain SID usually is not.
        let administrators = vec![1, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 0x20, 2, 0, 0];
        let text_only = SearchEntry {
            dn: "CN=x".to_string(),
            attrs: HashMap::from([(
                "tokenGroups".to_string(),
                vec![String::from_utf8(administrators.clone()).unwrap()],
            )]),
            bin_attrs: HashMap::new(),
        };
        assert_eq!(binaries(&text_only, "tokengroups"), std::slice::from_ref(&administrators));
        let binary_only = SearchEntry {
            dn: "CN=x".to_string(),
            attrs: HashMap::new(),
            bin_attrs: HashMap::from([("tokenGroups".to_string(), vec![administrators.clone(), vec![0xff]])]),
        };
        assert_eq!(binaries(&binary_only, "tokenGroups"), [administrators, vec![0xff]]);
    }
}
