//! Reading a gMSA's managed password as one of its allowed principals — what the CCG plugin
//! does on a Windows node with the standard user's credential from Key Vault.

use ldap3::Scope;

use super::LdapConfig;
use super::facts::naming_contexts;
use super::session::{Session, binary};
use crate::account::AccountName;
use crate::error::AdError;
use crate::escape::filter_value;
use crate::managed_password::{self, ManagedPassword};
use crate::password::SecretBytes;

const MANAGED_PASSWORD: &str = "msDS-ManagedPassword";

/// Binds as `config`'s principal (the standard user, not an administrator) over LDAPS or
/// StartTLS, reads the gMSA `gmsa`'s `msDS-ManagedPassword` and decodes it.
///
/// Guarantees: refused over plain LDAP before connecting (a DC sends the attribute only over a
/// sealed connection anyway). A principal the gMSA does not allow gets the entry without the
/// attribute: [`AdError::ManagedPasswordDenied`]. The blob and the password stay in
/// [`SecretBytes`]; nothing of either is logged.
#[tracing::instrument(name = "ad.read_managed_password", skip_all, fields(url = %config.url, who = %config.bind_principal, gmsa = %gmsa))]
pub async fn read_managed_password(config: &LdapConfig, gmsa: &AccountName) -> Result<ManagedPassword, AdError> {
    config.check_encrypted("reading a managed password")?;
    let mut session = Session::open(config, &config.bind_principal, &config.bind_password).await?;
    let read = read_with(&mut session, gmsa, &config.bind_principal).await;
    session.close().await;
    read
}

async fn read_with(session: &mut Session, gmsa: &AccountName, who: &str) -> Result<ManagedPassword, AdError> {
    let base = naming_contexts(session).await?.domain;
    let filter = format!(
        "(&(objectClass=msDS-GroupManagedServiceAccount)(sAMAccountName={}))",
        filter_value(&gmsa.machine_account())
    );
    let entries = session.search(&base, Scope::Subtree, &filter, &[MANAGED_PASSWORD]).await?;
    let entry = match entries.as_slice() {
        [entry] => entry,
        [] => return Err(AdError::NotFound { what: format!("gMSA {} (as seen by {who})", gmsa.machine_account()) }),
        more => return Err(AdError::Ambiguous { name: gmsa.machine_account(), count: more.len() }),
    };
    let blob = SecretBytes::new(
        binary(entry, MANAGED_PASSWORD)
            .ok_or_else(|| AdError::ManagedPasswordDenied { gmsa: gmsa.machine_account(), who: who.to_string() })?,
    );
    managed_password::decode(blob.expose())
        .map_err(|source| AdError::ManagedPasswordBlob { gmsa: gmsa.machine_account(), source })
}
