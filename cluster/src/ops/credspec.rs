//! Which GMSACredentialSpec version the cluster serves (from discovery) and reading one
//! credspec as the API serves it, for teardown, validation and diagnostics.

use gmsa::credspec::{self, ApiVersion};
use kube::Client;
use serde_json::Value;
use tracing::instrument;

use crate::desired::{ObjectKind, ObjectRef};
use crate::ops::resources::get_value;

/// Why reading a credspec failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadCredspecError {
    /// Discovery of `windows.k8s.io` failed.
    #[error("discovering which versions of {} the cluster serves failed", credspec::API_GROUP)]
    Discovery(#[source] kube::Error),
    /// The GET of the credspec failed (other than 404).
    #[error("reading GMSACredentialSpec {name} failed")]
    Read {
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// The versions of `windows.k8s.io` whose discovery lists `gmsacredentialspecs`.
pub(crate) async fn credspec_versions(client: &Client) -> Result<Vec<String>, kube::Error> {
    let groups = client.list_api_groups().await?;
    let Some(group) = groups.groups.iter().find(|group| group.name == credspec::API_GROUP) else {
        return Ok(Vec::new());
    };
    let mut served = Vec::new();
    for version in &group.versions {
        let resources = client.list_api_group_resources(&version.group_version).await?;
        if resources.resources.iter().any(|resource| resource.name == credspec::PLURAL) {
            served.push(version.version.clone());
        }
    }
    Ok(served)
}

/// The version apply would use: `v1` when served, else `v1alpha1`; `None` without the CRD.
pub(crate) async fn served_version(client: &Client) -> Result<Option<ApiVersion>, kube::Error> {
    Ok(ApiVersion::choose(&credspec_versions(client).await?))
}

/// The GMSACredentialSpec `name` as the API serves it (at `v1`, or `v1alpha1` on clusters that
/// serve nothing newer, as apply chooses), including server metadata; `None` when it does not
/// exist or the cluster does not serve the CRD at all.
#[instrument(skip(client))]
pub async fn read_credspec(client: &Client, name: &str) -> Result<Option<Value>, ReadCredspecError> {
    let Some(version) = served_version(client).await.map_err(ReadCredspecError::Discovery)? else {
        return Ok(None);
    };
    let object = ObjectRef { kind: ObjectKind::CredSpec, namespace: None, name: name.to_string() };
    get_value(client, &object, version)
        .await
        .map_err(|source| ReadCredspecError::Read { name: name.to_string(), source })
}
