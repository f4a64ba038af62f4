//! Secret operations of the data plane — SetSecret (`PUT /secrets/{name}`, a new version each
//! time; 409 while the name is soft-deleted), GetSecret (`GET /secrets/{name}/{version?}`),
//! GetSecretVersions (`GET /secrets/{name}/versions`, paged with `maxresults`/`nextLink`),
//! GetSecrets (`GET /secrets`); DeleteSecret, GetDeletedSecret and PurgeDeletedSecret live in
//! `deleted.rs` — and the access decision: access policy `permissions.secrets` on
//! access-policy vaults, Key Vault data roles at vault/resource-group/subscription scope on RBAC
//! vaults. Shapes follow `keyvault/data-plane/Microsoft.KeyVault/stable/7.5/secrets.json`
//! (`SecretBundle`, `SecretItem`, `SecretListResult`, `SecretAttributes` in Unix seconds).

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::VaultAnswer;
use crate::arm::role_assignments::covers;
use crate::config::Operation;
use crate::roles::{grants_secret_permission, role_guid};
use crate::state::{SecretHistory, SecretVersion, State, Vault};
use crate::token::Claims;

/// Default and largest page size of list operations.
const MAX_RESULTS: usize = 25;

/// Maps a method and path to an operation, `None` if not served.
pub(crate) fn operation(method: &Method, segments: &[&str]) -> Option<Operation> {
    match (method.as_str(), segments) {
        ("PUT", ["secrets", _]) => Some(Operation::SecretSet),
        ("DELETE", ["secrets", _]) => Some(Operation::SecretDelete),
        ("GET", ["deletedsecrets", _]) => Some(Operation::DeletedSecretGet),
        ("DELETE", ["deletedsecrets", _]) => Some(Operation::DeletedSecretPurge),
        ("GET", ["secrets"]) | ("GET", ["secrets", _, "versions"]) => Some(Operation::SecretVersions),
        ("GET", ["secrets", _]) | ("GET", ["secrets", _, _]) => Some(Operation::SecretGet),
        _ => None,
    }
}

fn permission_of(operation: Operation) -> &'static str {
    match operation {
        Operation::SecretSet => "set",
        Operation::SecretVersions => "list",
        Operation::SecretDelete => "delete",
        Operation::DeletedSecretPurge => "purge",
        _ => "get",
    }
}

fn data_action(permission: &str) -> &'static str {
    match permission {
        "set" => "Microsoft.KeyVault/vaults/secrets/setSecret/action",
        "list" => "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
        "delete" => "Microsoft.KeyVault/vaults/secrets/delete",
        "purge" => "Microsoft.KeyVault/vaults/secrets/purge/action",
        _ => "Microsoft.KeyVault/vaults/secrets/getSecret/action",
    }
}

/// Allows the call, or answers 403 worded as Key Vault words it for the vault's model.
pub(crate) fn authorize(
    state: &State,
    vault_key: &str,
    claims: &Claims,
    operation: Operation,
) -> Result<(), VaultAnswer> {
    let Some(vault) = state.vaults.get(vault_key) else {
        return Err(VaultAnswer::error(
            StatusCode::NOT_FOUND,
            "VaultNotFound",
            "The vault behind this endpoint no longer exists.",
        ));
    };
    let permission = permission_of(operation);
    let caller = format!("appid={};oid={};iss={}", claims.appid, claims.oid, claims.iss);
    if vault.enable_rbac_authorization {
        let granted = state.role_assignments.values().any(|assignment| {
            assignment.principal_id.eq_ignore_ascii_case(&claims.oid)
                && covers(&assignment.scope, &vault.id)
                && role_guid(&assignment.role_definition_id)
                    .is_some_and(|guid| grants_secret_permission(&guid, permission))
        });
        if granted {
            return Ok(());
        }
        let mut denied = VaultAnswer::error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!(
                "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: {caller}\r\nAction: '{}'\r\nResource: '{}'\r\nAssignment: (not found)\r\nDenyAssignmentId: null\r\nDecisionReason: null \r\nVault: {};location={}\r\n",
                data_action(permission),
                vault.id.to_ascii_lowercase(),
                vault.name,
                vault.location
            ),
        );
        denied.body["error"]["innererror"] = json!({"code": "ForbiddenByRbac"});
        return Err(denied);
    }
    let granted = vault.access_policies.iter().any(|entry| {
        entry.object_id.eq_ignore_ascii_case(&claims.oid)
            && entry
                .permissions
                .secrets
                .iter()
                .any(|granted| granted.eq_ignore_ascii_case(permission) || granted.eq_ignore_ascii_case("all"))
    });
    if granted {
        return Ok(());
    }
    let mut denied = VaultAnswer::error(
        StatusCode::FORBIDDEN,
        "Forbidden",
        format!(
            "The user, group or application '{caller}' does not have secrets {permission} permission on key vault '{};location={}'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287",
            vault.name, vault.location
        ),
    );
    denied.body["error"]["innererror"] = json!({"code": "AccessDenied"});
    Err(denied)
}

/// Runs an authorized operation.
pub(crate) fn execute(
    state: &mut State,
    vault_key: &str,
    operation: Operation,
    segments: &[&str],
    query: &[(String, String)],
    api_version: &str,
    body: &[u8],
) -> VaultAnswer {
    let Some(vault) = state.vaults.get(vault_key).cloned() else {
        return VaultAnswer::error(
            StatusCode::NOT_FOUND,
            "VaultNotFound",
            "The vault behind this endpoint no longer exists.",
        );
    };
    let query_value = |name: &str| query.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str());
    let max_results = query_value("maxresults")
        .and_then(|text| text.parse::<usize>().ok())
        .unwrap_or(MAX_RESULTS)
        .clamp(1, MAX_RESULTS);
    let skip = query_value("$skiptoken").and_then(|text| text.parse::<usize>().ok()).unwrap_or(0);
    match (operation, segments) {
        (Operation::SecretSet, [_, name]) => set(state, &vault, name, body),
        (Operation::SecretDelete, [_, name]) => super::deleted::delete(state, &vault, name),
        (Operation::DeletedSecretGet, [_, name]) => super::deleted::get(state, &vault, name),
        (Operation::DeletedSecretPurge, [_, name]) => super::deleted::purge(state, &vault, name),
        (Operation::SecretGet, [_, name]) => get(state, &vault, name, None),
        (Operation::SecretGet, [_, name, version]) => get(state, &vault, name, Some(version)),
        (Operation::SecretVersions, [_, name, _]) => {
            let items = match history(state, &vault, name) {
                Some(history) => {
                    history.versions.iter().map(|version| item(&vault, &history.name, Some(version))).collect()
                }
                None => return not_found(name),
            };
            page(items, &format!("{}secrets/{name}/versions", vault.vault_uri), api_version, skip, max_results)
        }
        (Operation::SecretVersions, [_]) => {
            let items = state
                .secrets
                .get(&vault.id.to_ascii_lowercase())
                .map(|secrets| {
                    secrets.values().map(|history| item(&vault, &history.name, None).with_latest(history)).collect()
                })
                .unwrap_or_default();
            page(items, &format!("{}secrets", vault.vault_uri), api_version, skip, max_results)
        }
        _ => VaultAnswer::error(StatusCode::NOT_FOUND, "NotFound", "Unsupported secrets path."),
    }
}

fn valid_name(name: &str) -> bool {
    (1..=127).contains(&name.len())
        && name.chars().all(|character| character.is_ascii_alphanumeric() || character == '-')
}

pub(super) fn not_found(name: &str) -> VaultAnswer {
    VaultAnswer::error(
        StatusCode::NOT_FOUND,
        "SecretNotFound",
        format!(
            "A secret with (name/id) {name} was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
        ),
    )
}

fn history<'a>(state: &'a State, vault: &Vault, name: &str) -> Option<&'a SecretHistory> {
    state.secrets.get(&vault.id.to_ascii_lowercase())?.get(&name.to_ascii_lowercase())
}

pub(super) fn attributes(version: &SecretVersion) -> Value {
    json!({
        "enabled": version.enabled,
        "created": version.created,
        "updated": version.created,
        "recoveryLevel": "Recoverable+Purgeable",
        "recoverableDays": 90,
    })
}

fn bundle(vault: &Vault, name: &str, version: &SecretVersion) -> Value {
    let mut body = json!({
        "value": version.value,
        "id": format!("{}secrets/{name}/{}", vault.vault_uri, version.version),
        "attributes": attributes(version),
    });
    if let Some(content_type) = &version.content_type {
        body["contentType"] = Value::from(content_type.clone());
    }
    if let Some(tags) = &version.tags {
        body["tags"] = tags.clone();
    }
    body
}

/// A `SecretItem`; `version` `None` gives the unversioned id used by GetSecrets.
struct Item(Value);

impl Item {
    fn with_latest(mut self, history: &SecretHistory) -> Item {
        if let Some(latest) = history.versions.last() {
            self.0["attributes"] = attributes(latest);
            if let Some(content_type) = &latest.content_type {
                self.0["contentType"] = Value::from(content_type.clone());
            }
        }
        self
    }
}

fn item(vault: &Vault, name: &str, version: Option<&SecretVersion>) -> Item {
    let id = match version {
        Some(version) => format!("{}secrets/{name}/{}", vault.vault_uri, version.version),
        None => format!("{}secrets/{name}", vault.vault_uri),
    };
    let mut body = json!({"id": id});
    if let Some(version) = version {
        body["attributes"] = attributes(version);
        if let Some(content_type) = &version.content_type {
            body["contentType"] = Value::from(content_type.clone());
        }
        if let Some(tags) = &version.tags {
            body["tags"] = tags.clone();
        }
    }
    Item(body)
}

fn page(items: Vec<Item>, base: &str, api_version: &str, skip: usize, max_results: usize) -> VaultAnswer {
    let total = items.len();
    let value: Vec<Value> = items.into_iter().skip(skip).take(max_results).map(|item| item.0).collect();
    let next = skip + max_results;
    let next_link =
        (next < total).then(|| format!("{base}?api-version={api_version}&$skiptoken={next}&maxresults={max_results}"));
    VaultAnswer::ok(json!({"value": value, "nextLink": next_link}))
}

fn set(state: &mut State, vault: &Vault, name: &str, body: &[u8]) -> VaultAnswer {
    if !valid_name(name) {
        return VaultAnswer::error(
            StatusCode::BAD_REQUEST,
            "BadParameter",
            format!("The request URI contains an invalid name: {name}"),
        );
    }
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return VaultAnswer::error(StatusCode::BAD_REQUEST, "BadParameter", "The request body is not valid JSON.");
    };
    let Some(value) = request["value"].as_str() else {
        return VaultAnswer::error(StatusCode::BAD_REQUEST, "BadParameter", "Property 'value' is required.");
    };
    if super::deleted::is_deleted(state, vault, name) {
        return VaultAnswer::error(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "Secret {name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged."
            ),
        );
    }
    let version = SecretVersion {
        version: state.rng.uuid().simple().to_string(),
        value: value.to_string(),
        content_type: request["contentType"].as_str().map(str::to_string),
        tags: request["tags"].is_object().then(|| request["tags"].clone()),
        enabled: request["attributes"]["enabled"].as_bool().unwrap_or(true),
        created: OffsetDateTime::now_utc().unix_timestamp(),
    };
    let secrets = state.secrets.entry(vault.id.to_ascii_lowercase()).or_default();
    let history = secrets
        .entry(name.to_ascii_lowercase())
        .or_insert_with(|| SecretHistory { name: name.to_string(), versions: Vec::new() });
    let changed = history.versions.last().is_none_or(|latest| latest.value != version.value);
    history.versions.push(version.clone());
    let canonical = history.name.clone();
    let answer = bundle(vault, &canonical, &version);
    let id = answer["id"].as_str().unwrap_or_default().to_string();
    state.record("PUT", &id, Operation::SecretSet, changed, &request);
    VaultAnswer::ok(answer)
}

fn get(state: &State, vault: &Vault, name: &str, version: Option<&str>) -> VaultAnswer {
    let Some(history) = history(state, vault, name) else {
        return not_found(name);
    };
    let found = match version.filter(|version| !version.is_empty()) {
        Some(version) => history.versions.iter().find(|candidate| candidate.version.eq_ignore_ascii_case(version)),
        None => history.versions.last(),
    };
    match found {
        Some(found) if !found.enabled => {
            VaultAnswer::error(StatusCode::FORBIDDEN, "Forbidden", "Operation get is not allowed on a disabled secret.")
        }
        Some(found) => VaultAnswer::ok(bundle(vault, &history.name, found)),
        None => not_found(&format!("{name}/{}", version.unwrap_or_default())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_secret_paths() {
        assert_eq!(operation(&Method::PUT, &["secrets", "s"]), Some(Operation::SecretSet));
        assert_eq!(operation(&Method::GET, &["secrets", "s"]), Some(Operation::SecretGet));
        assert_eq!(operation(&Method::GET, &["secrets", "s", "abc"]), Some(Operation::SecretGet));
        assert_eq!(operation(&Method::GET, &["secrets", "s", "versions"]), Some(Operation::SecretVersions));
        assert_eq!(operation(&Method::DELETE, &["secrets", "s"]), Some(Operation::SecretDelete));
        assert_eq!(operation(&Method::DELETE, &["deletedsecrets", "s"]), Some(Operation::DeletedSecretPurge));
        assert_eq!(operation(&Method::GET, &["deletedsecrets", "s"]), Some(Operation::DeletedSecretGet));
        assert_eq!(operation(&Method::POST, &["secrets", "s"]), None);
        assert!(valid_name("GMSADomainUserCred"));
        assert!(!valid_name("bad_name"));
    }
}
