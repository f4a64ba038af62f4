//! The central adapters as a credential rotation uses them ([`RotationPort`]): Key Vault through
//! `azure::Azure` (latest value's user, versions tagged with a run, new versions), Active
//! Directory through `ad::LdapDirectory` (the guarded password reset, the password policy).
//!
//! Refusals come from the `ad` crate, before it writes anything: the reset is refused for any
//! account that is not a plain user — built-in, critical, privileged (see `ad::Directory`).

use super::Central;
use crate::rotation::RotationPort;
use crate::rotation::runner::{CurrentCredential, RotationError};
use ad::Directory;
use futures::future::BoxFuture;
use gmsa::SecretString;
use gmsa::rotation::RUN_TAG;
use gmsa::rotation::run::Target;
use std::collections::BTreeMap;

fn azure_error(err: azure::Error) -> RotationError {
    RotationError::new(format!("azure_{}", err.kind()), bus::chain(&err))
}

fn ad_error(err: ad::AdError) -> RotationError {
    let code = match &err {
        ad::AdError::WriteRefused { rule, .. } => {
            return RotationError::new(format!("ad_write_refused_{}", rule.code()), bus::chain(&err));
        }
        ad::AdError::WrongObjectClass { .. } => "wrong_object_class",
        ad::AdError::Name(_) => "invalid_name",
        ad::AdError::RotationNotConfirmed { .. } => "rotation_not_confirmed",
        _ => "ad_error",
    };
    RotationError::new(code, bus::chain(&err))
}

/// `(DOMAIN, user)` of a credential string, split as the CCG plugin splits it
/// ([`gmsa::secret::split_credential`]).
pub fn credential_parts(value: &str) -> Option<(String, String)> {
    let (domain, user, _) = gmsa::secret::split_credential(value).ok()?;
    Some((domain.to_string(), user.to_string()))
}

impl RotationPort for Central {
    fn current_user<'a>(
        &'a self,
        target: &'a Target,
    ) -> BoxFuture<'a, Result<Option<CurrentCredential>, RotationError>> {
        Box::pin(async move {
            let vault = azure::VaultRef::from(&target.vault);
            let current =
                self.azure.read_domain_user_secret(&vault, Some(&target.secret_name)).await.map_err(azure_error)?;
            Ok(current.and_then(|(value, uri)| {
                let (domain, user) = credential_parts(value.expose())?;
                let version = uri.0.split('?').next().unwrap_or_default().rsplit('/').next().unwrap_or_default();
                Some(CurrentCredential { domain, user, version: version.to_string() })
            }))
        })
    }

    fn tagged_version<'a>(
        &'a self,
        target: &'a Target,
        run_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, RotationError>> {
        Box::pin(async move {
            let vault = azure::VaultRef::from(&target.vault);
            let versions = self.azure.secret_versions(&vault, Some(&target.secret_name)).await.map_err(azure_error)?;
            Ok(versions
                .into_iter()
                .find(|version| version.enabled && version.tags.get(RUN_TAG).is_some_and(|tag| tag == run_id))
                .map(|version| version.version))
        })
    }

    fn reset_password<'a>(
        &'a self,
        credential: &'a str,
        user: &'a str,
    ) -> BoxFuture<'a, Result<SecretString, RotationError>> {
        Box::pin(async move {
            let name = ad::AccountName::new(user).map_err(|err| RotationError::new("invalid_name", err.to_string()))?;
            let spec = ad::UserSpec::new(name, credential)
                .map_err(|err| RotationError::new("invalid_credential", err.to_string()))?;
            self.directory.rotate_password(&spec).await.map_err(ad_error)
        })
    }

    fn write_version<'a>(
        &'a self,
        target: &'a Target,
        value: &'a SecretString,
        run_id: &'a str,
    ) -> BoxFuture<'a, Result<String, RotationError>> {
        Box::pin(async move {
            let vault = azure::VaultRef::from(&target.vault);
            let tags = BTreeMap::from([(RUN_TAG.to_string(), run_id.to_string())]);
            self.azure.write_secret_version(&vault, Some(&target.secret_name), value, &tags).await.map_err(azure_error)
        })
    }

    fn read_version<'a>(
        &'a self,
        target: &'a Target,
        version: &'a str,
    ) -> BoxFuture<'a, Result<Option<SecretString>, RotationError>> {
        Box::pin(async move {
            let vault = azure::VaultRef::from(&target.vault);
            self.azure.read_secret_version(&vault, Some(&target.secret_name), version).await.map_err(azure_error)
        })
    }

    fn max_password_age<'a>(
        &'a self,
        users: &'a [String; 2],
    ) -> BoxFuture<'a, Result<Option<time::Duration>, RotationError>> {
        Box::pin(async move {
            let names = users
                .iter()
                .map(|user| {
                    ad::AccountName::new(user).map_err(|err| RotationError::new("invalid_name", err.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let age = self.directory.max_password_age(&names).await.map_err(ad_error)?;
            Ok(age.map(|age| time::Duration::try_from(age).unwrap_or(time::Duration::MAX)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_split_as_the_plugin_splits_them() {
        assert_eq!(credential_parts("CONTOSO\\svc:p@ss:w\\rd"), Some(("CONTOSO".into(), "svc".into())));
        assert_eq!(credential_parts("no-backslash:pw"), None);
        assert_eq!(credential_parts("CONTOSO\\no-colon"), None);
    }
}
