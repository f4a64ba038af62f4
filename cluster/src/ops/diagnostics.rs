//! `collect_diagnostics`: what support needs from one cluster, read through the API (the
//! PowerShell module's Copy-WindowsHostsLogs without RDP): the credspec as applied, our
//! ClusterRole and RoleBindings, the gMSA webhook configurations, the webhook's Deployment and
//! Pods, the Windows nodes and the Events that matter ([`crate::diagnostics`] decides which).
//!
//! Guarantees: only reads; never reads Secrets. A piece that cannot be read or does not exist
//! becomes a note, never an error: support gets everything else.

use std::time::SystemTime;

use k8s_openapi::api::admissionregistration::v1::{MutatingWebhookConfiguration, ValidatingWebhookConfiguration};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
use kube::api::{Api, ListParams};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing::{info, instrument};

use crate::desired::{cluster_role_name, is_label_value};
use crate::diagnostics::{
    EventFilter, deployment_summary, is_since, list_document, node_summary, pod_summary, sort_events,
    strip_managed_fields, to_yaml,
};
use crate::ops::credspec::read_credspec;
use crate::plan::{Ownership, ownership};
use crate::preflight::WINDOWS_NODE_SELECTOR;

/// Page size of the LISTs (events can be many).
const PAGE_SIZE: u32 = 500;

/// Which spec and owner to collect for, and from when on for events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiagnosticsRequest {
    pub spec_name: String,
    pub owner: String,
    /// Only events that last happened at or after this time; `None` for all the API still holds
    /// (the API server keeps events for an hour by default).
    pub since: Option<SystemTime>,
}

/// The collected files and what could not be collected.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Diagnostics {
    /// `(path inside the archive, YAML bytes)`, e.g. `kubernetes/credspec.yaml`.
    pub files: Vec<(String, Vec<u8>)>,
    /// What could not be collected and why, one sentence each.
    pub notes: Vec<String>,
}

/// Why collection could not start at all.
#[derive(Debug, thiserror::Error)]
pub enum DiagnosticsError {
    /// The owner is not a valid label value, so no object can carry it.
    #[error("owner label value {value:?} is invalid: must be 1-63 characters of [A-Za-z0-9-_.]")]
    Owner { value: String },
}

/// Every page of a LIST.
async fn list_all<K>(api: &Api<K>, params: ListParams) -> Result<Vec<K>, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut items = Vec::new();
    let mut params = params.limit(PAGE_SIZE);
    loop {
        let page = api.list(&params).await?;
        items.extend(page.items);
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(items),
        }
    }
}

/// A typed object as JSON without managedFields (typed objects always serialize; `null` if not).
fn to_clean_value<K: serde::Serialize>(item: K) -> Value {
    strip_managed_fields(serde_json::to_value(item).unwrap_or(Value::Null))
}

fn to_values<K: serde::Serialize>(items: Vec<K>) -> Vec<Value> {
    items.into_iter().map(to_clean_value).collect()
}

/// Collects what support needs; see the module doc.
#[instrument(skip_all, fields(spec = %request.spec_name, owner = %request.owner))]
pub async fn collect_diagnostics(
    client: &Client,
    request: &DiagnosticsRequest,
) -> Result<Diagnostics, DiagnosticsError> {
    if !is_label_value(&request.owner) {
        return Err(DiagnosticsError::Owner { value: request.owner.clone() });
    }
    let mut out = Diagnostics::default();
    collect_credspec(client, request, &mut out).await;
    collect_rbac(client, request, &mut out).await;
    let webhook_names = collect_webhooks(client, &mut out).await;
    let node_names = collect_nodes(client, &mut out).await;
    let mut keywords = webhook_names;
    keywords.push(request.spec_name.clone());
    collect_events(client, request, &node_names, EventFilter { extra_keywords: keywords }, &mut out).await;
    info!(files = out.files.len(), notes = out.notes.len(), "diagnostics collected");
    Ok(out)
}

async fn collect_credspec(client: &Client, request: &DiagnosticsRequest, out: &mut Diagnostics) {
    match read_credspec(client, &request.spec_name).await {
        Ok(Some(credspec)) => {
            out.files.push(("kubernetes/credspec.yaml".into(), to_yaml(&strip_managed_fields(credspec))))
        }
        Ok(None) => out.notes.push(format!(
            "GMSACredentialSpec {}: not found (or the windows.k8s.io CRD is not served)",
            request.spec_name
        )),
        Err(error) => out.notes.push(format!("GMSACredentialSpec {}: {}", request.spec_name, error_chain(&error))),
    }
}

async fn collect_rbac(client: &Client, request: &DiagnosticsRequest, out: &mut Diagnostics) {
    let role_name = cluster_role_name(&request.spec_name);
    match Api::<ClusterRole>::all(client.clone()).get_opt(&role_name).await {
        Ok(Some(role)) => out.files.push(("kubernetes/clusterrole.yaml".into(), to_yaml(&to_clean_value(role)))),
        Ok(None) => out.notes.push(format!("ClusterRole {role_name}: not found")),
        Err(error) => out.notes.push(format!("ClusterRole {role_name}: {}", error_chain(&error))),
    }
    // Bindings labelled for the owner, and any other binding that grants our role.
    match list_all(&Api::<RoleBinding>::all(client.clone()), ListParams::default()).await {
        Ok(bindings) => {
            let ours: Vec<Value> = to_values(bindings)
                .into_iter()
                .filter(|binding| {
                    ownership(binding, &request.owner) == Ownership::Ours
                        || (binding["roleRef"]["kind"] == "ClusterRole" && binding["roleRef"]["name"] == role_name)
                })
                .collect();
            if ours.is_empty() {
                out.notes.push(format!("RoleBindings: none for owner {} or ClusterRole {role_name}", request.owner));
            } else {
                out.files.push(("kubernetes/rolebindings.yaml".into(), to_yaml(&list_document(ours))));
            }
        }
        Err(error) => out.notes.push(format!("RoleBindings: {}", error_chain(&error))),
    }
}

/// Writes the gMSA webhook configurations and the webhook's Deployment and Pods; returns the
/// names (configurations, service) that make an event relevant.
async fn collect_webhooks(client: &Client, out: &mut Diagnostics) -> Vec<String> {
    let is_gmsa = |value: &Value| {
        value["metadata"]["name"].as_str().is_some_and(|name| name.to_lowercase().contains("gmsa"))
            || value["webhooks"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|webhook| webhook["name"].as_str().is_some_and(|name| name.to_lowercase().contains("gmsa")))
    };
    let mut configurations = Vec::new();
    match Api::<MutatingWebhookConfiguration>::all(client.clone()).list(&ListParams::default()).await {
        Ok(list) => configurations.extend(to_values(list.items).into_iter().filter(is_gmsa)),
        Err(error) => out.notes.push(format!("MutatingWebhookConfigurations: {}", error_chain(&error))),
    }
    match Api::<ValidatingWebhookConfiguration>::all(client.clone()).list(&ListParams::default()).await {
        Ok(list) => configurations.extend(to_values(list.items).into_iter().filter(is_gmsa)),
        Err(error) => out.notes.push(format!("ValidatingWebhookConfigurations: {}", error_chain(&error))),
    }
    if configurations.is_empty() {
        out.notes
            .push("gMSA webhook: no MutatingWebhookConfiguration or ValidatingWebhookConfiguration names gmsa".into());
        return Vec::new();
    }
    let mut names: Vec<String> =
        configurations.iter().filter_map(|c| c["metadata"]["name"].as_str().map(str::to_string)).collect();
    let service =
        configurations.iter().flat_map(|c| c["webhooks"].as_array().cloned().unwrap_or_default()).find_map(|webhook| {
            let service = &webhook["clientConfig"]["service"];
            Some((service["namespace"].as_str()?.to_string(), service["name"].as_str()?.to_string()))
        });
    out.files.push(("kubernetes/webhook-configurations.yaml".into(), to_yaml(&list_document(configurations))));
    let Some((namespace, service_name)) = service else {
        out.notes.push("gMSA webhook: its configuration names no in-cluster service (URL webhook)".into());
        return names;
    };
    names.push(service_name.clone());
    collect_webhook_workload(client, &namespace, &service_name, out).await;
    names.sort();
    names.dedup();
    names
}

/// The webhook Deployment named like its service, and the Pods its selector matches.
async fn collect_webhook_workload(client: &Client, namespace: &str, name: &str, out: &mut Diagnostics) {
    let deployment = match Api::<Deployment>::namespaced(client.clone(), namespace).get_opt(name).await {
        Ok(Some(deployment)) => deployment,
        Ok(None) => {
            out.notes.push(format!("gMSA webhook: no Deployment {namespace}/{name} (named like its service)"));
            return;
        }
        Err(error) => {
            out.notes.push(format!("gMSA webhook Deployment {namespace}/{name}: {}", error_chain(&error)));
            return;
        }
    };
    let selector: Vec<String> = deployment
        .spec
        .selector
        .match_labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    let deployment = to_clean_value(deployment);
    out.files.push(("kubernetes/webhook-deployment.yaml".into(), to_yaml(&deployment_summary(&deployment))));
    if selector.is_empty() {
        out.notes.push(format!("gMSA webhook Deployment {namespace}/{name}: no matchLabels selector; pods not listed"));
        return;
    }
    let pods = Api::<Pod>::namespaced(client.clone(), namespace);
    match list_all(&pods, ListParams::default().labels(&selector.join(","))).await {
        Ok(pods) => {
            let summaries = to_values(pods).iter().map(pod_summary).collect();
            out.files.push(("kubernetes/webhook-pods.yaml".into(), to_yaml(&list_document(summaries))));
        }
        Err(error) => out.notes.push(format!("gMSA webhook pods in {namespace}: {}", error_chain(&error))),
    }
}

/// Writes the Windows nodes; returns their names.
async fn collect_nodes(client: &Client, out: &mut Diagnostics) -> Vec<String> {
    match list_all(&Api::<Node>::all(client.clone()), ListParams::default().labels(WINDOWS_NODE_SELECTOR)).await {
        Ok(nodes) if nodes.is_empty() => {
            out.notes.push(format!("Windows nodes: none labelled {WINDOWS_NODE_SELECTOR}"));
            Vec::new()
        }
        Ok(nodes) => {
            let nodes = to_values(nodes);
            let names = nodes.iter().filter_map(|n| n["metadata"]["name"].as_str().map(str::to_string)).collect();
            let summaries = nodes.iter().map(node_summary).collect();
            out.files.push(("kubernetes/windows-nodes.yaml".into(), to_yaml(&list_document(summaries))));
            names
        }
        Err(error) => {
            out.notes.push(format!("Windows nodes: {}", error_chain(&error)));
            Vec::new()
        }
    }
}

/// Events on the Windows nodes (by field selector) and events anywhere that mention gMSA.
async fn collect_events(
    client: &Client,
    request: &DiagnosticsRequest,
    node_names: &[String],
    filter: EventFilter,
    out: &mut Diagnostics,
) {
    let events = Api::<Event>::all(client.clone());
    let mut relevant = Vec::new();
    for node in node_names {
        let on_node = ListParams::default().fields(&format!("involvedObject.kind=Node,involvedObject.name={node}"));
        match list_all(&events, on_node).await {
            Ok(found) => relevant.extend(to_values(found)),
            Err(error) => out.notes.push(format!("Events on node {node}: {}", error_chain(&error))),
        }
    }
    match list_all(&events, ListParams::default()).await {
        Ok(found) => relevant.extend(to_values(found).into_iter().filter(|event| filter.mentions_gmsa(event))),
        Err(error) => out.notes.push(format!("Events: {}", error_chain(&error))),
    }
    relevant.retain(|event| is_since(event, request.since));
    sort_events(&mut relevant);
    if relevant.is_empty() {
        out.notes.push("Events: none on Windows nodes or mentioning gMSA, CCG, credential specs or the webhook".into());
    } else {
        out.files.push(("kubernetes/events.yaml".into(), to_yaml(&list_document(relevant))));
    }
}

/// An error with its sources, for a note.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
