//! `verify`: run the seed's sample workload with the credspec, wait for the Deployment's verdict
//! (available, or a condition that will not resolve), and remove the workload again.
//!
//! Guarantee: the ConfigMap and Deployment are deleted whatever the verdict, also on timeout;
//! only a failing delete is reported as an error.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::wait::await_condition;
use serde::{Deserialize, Serialize};
use tracing::{info, instrument, warn};

use crate::desired::FIELD_MANAGER;
use crate::workload::{VerifyConfig, WORKLOAD_NAME, WorkloadState, config_map, deployment, workload_state};

/// The step name in command results.
pub const VERIFY_STEP: &str = "verify";

/// What the verification saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// The Deployment's verdict; `Pending` when the timeout ran out first.
    pub state: WorkloadState,
    /// True when the timeout ran out before a verdict.
    pub timed_out: bool,
}

/// Why verification could not run or clean up.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Creating the ConfigMap or Deployment was rejected.
    #[error("creating the sample workload {kind} {namespace}/{WORKLOAD_NAME} failed")]
    Create {
        kind: &'static str,
        namespace: String,
        #[source]
        source: kube::Error,
    },
    /// Watching the Deployment failed.
    #[error("watching Deployment {namespace}/{WORKLOAD_NAME} failed")]
    Watch {
        namespace: String,
        #[source]
        source: kube::runtime::wait::Error,
    },
    /// Removing the sample workload failed.
    #[error("removing the sample workload {kind} {namespace}/{WORKLOAD_NAME} failed")]
    Cleanup {
        kind: &'static str,
        namespace: String,
        #[source]
        source: kube::Error,
    },
}

/// Creates the workload, waits for its verdict, removes it.
#[instrument(skip_all, fields(spec = %config.spec_name, namespace = %config.namespace))]
pub async fn verify(client: &Client, config: &VerifyConfig) -> Result<VerifyReport, VerifyError> {
    let namespace = config.namespace.clone();
    let config_maps = Api::<ConfigMap>::namespaced(client.clone(), &namespace);
    let deployments = Api::<Deployment>::namespaced(client.clone(), &namespace);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let created = async {
        config_maps
            .patch(WORKLOAD_NAME, &params, &Patch::Apply(&config_map(config)))
            .await
            .map_err(|source| VerifyError::Create { kind: "ConfigMap", namespace: namespace.clone(), source })?;
        deployments
            .patch(WORKLOAD_NAME, &params, &Patch::Apply(&deployment(config)))
            .await
            .map_err(|source| VerifyError::Create { kind: "Deployment", namespace: namespace.clone(), source })?;
        let has_verdict = |found: Option<&Deployment>| {
            found.is_some_and(|found| {
                workload_state(&serde_json::to_value(found).unwrap_or_default()) != WorkloadState::Pending
            })
        };
        match tokio::time::timeout(config.timeout, await_condition(deployments.clone(), WORKLOAD_NAME, has_verdict))
            .await
        {
            Ok(Ok(found)) => {
                let state = found
                    .map(|found| workload_state(&serde_json::to_value(&found).unwrap_or_default()))
                    .unwrap_or(WorkloadState::Pending);
                Ok(VerifyReport { state, timed_out: false })
            }
            Ok(Err(source)) => Err(VerifyError::Watch { namespace: namespace.clone(), source }),
            Err(_elapsed) => Ok(VerifyReport { state: WorkloadState::Pending, timed_out: true }),
        }
    }
    .await;
    // Remove the workload whatever happened above.
    let cleanup = remove(&config_maps, &deployments, &namespace).await;
    let report = created?;
    cleanup?;
    info!(?report, "verification finished");
    Ok(report)
}

fn ignore_missing<T>(result: Result<T, kube::Error>) -> Result<(), kube::Error> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(error),
    }
}

async fn remove(
    config_maps: &Api<ConfigMap>,
    deployments: &Api<Deployment>,
    namespace: &str,
) -> Result<(), VerifyError> {
    // Background propagation: the Deployment goes at once, the garbage collector removes its
    // ReplicaSet and pods afterwards, as `kubectl delete` does.
    ignore_missing(deployments.delete(WORKLOAD_NAME, &DeleteParams::background()).await)
        .map_err(|source| VerifyError::Cleanup { kind: "Deployment", namespace: namespace.to_string(), source })?;
    ignore_missing(config_maps.delete(WORKLOAD_NAME, &DeleteParams::default()).await).map_err(|source| {
        warn!("sample workload ConfigMap left behind");
        VerifyError::Cleanup { kind: "ConfigMap", namespace: namespace.to_string(), source }
    })
}
