//! Who a request is from: bearer-token authentication against the cluster's token table, then
//! impersonation (`Impersonate-User`, `Impersonate-Group`, `Impersonate-Uid`,
//! `Impersonate-Extra-*`) as the apiserver's impersonation filter does it — each impersonated
//! attribute is itself authorized (`impersonate` on `users`, `groups`, `serviceaccounts`,
//! `uids`, `userextras/<key>`), and an impersonated service account gets the service-account
//! groups when no groups are named.

use std::collections::BTreeMap;

use axum::http::{HeaderMap, header};

use crate::rbac::{Policy, Request, UserInfo};
use crate::status::{ApiError, Subject};

/// Bearer tokens and the users they authenticate.
pub(crate) type TokenTable = BTreeMap<String, UserInfo>;

/// The user of a request's bearer token; `Unauthorized` without a known one.
pub(crate) fn authenticate(tokens: &TokenTable, headers: &HeaderMap) -> Result<UserInfo, ApiError> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .and_then(|token| tokens.get(token.trim()))
        .cloned()
        .ok_or(ApiError::Unauthorized)
}

fn header_values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    headers.get_all(name).iter().filter_map(|value| value.to_str().ok()).collect()
}

/// The 403 of a refused impersonation, worded as the apiserver's.
pub(crate) fn forbidden(requester: &UserInfo, request: &Request, group: &str, resource: &str, name: &str) -> ApiError {
    ApiError::Forbidden {
        subject: Subject { group: group.into(), resource: resource.into(), kind: String::new(), name: name.into() },
        message: request.forbidden_message(&requester.name),
    }
}

/// The user the request acts as: `requester` itself, or whom it may impersonate.
pub(crate) fn impersonate(requester: UserInfo, headers: &HeaderMap, policy: &Policy<'_>) -> Result<UserInfo, ApiError> {
    let user = header_values(headers, "impersonate-user").first().map(|name| (*name).to_owned());
    let groups: Vec<String> = header_values(headers, "impersonate-group").into_iter().map(str::to_owned).collect();
    let uid = header_values(headers, "impersonate-uid").first().map(|uid| (*uid).to_owned());
    let extras: Vec<String> =
        headers.keys().filter_map(|name| name.as_str().strip_prefix("impersonate-extra-").map(str::to_owned)).collect();
    let Some(user) = user else {
        if groups.is_empty() && uid.is_none() && extras.is_empty() {
            return Ok(requester);
        }
        return Err(ApiError::InternalError(format!(
            "requested [{}] without impersonating a user",
            groups.iter().map(|g| format!("{{Group  {g}  authentication.k8s.io/v1  }}")).collect::<Vec<_>>().join(" ")
        )));
    };
    let check = |group: &str, resource: &str, subresource: &str, namespace: &str, name: &str| {
        let request = Request::Resource {
            verb: "impersonate".into(),
            group: group.into(),
            resource: resource.into(),
            subresource: subresource.into(),
            namespace: namespace.into(),
            name: name.into(),
        };
        if policy.authorize(&requester, &request).allowed {
            Ok(())
        } else {
            Err(forbidden(&requester, &request, group, resource, name))
        }
    };
    let impersonated = match UserInfo::new(user.clone(), &[]).as_service_account() {
        Some((namespace, name)) => {
            check("", "serviceaccounts", "", namespace, name)?;
            if groups.is_empty() {
                UserInfo::service_account(namespace, name)
            } else {
                UserInfo::new(user.clone(), &groups.iter().map(String::as_str).collect::<Vec<_>>())
            }
        }
        None => {
            check("", "users", "", "", &user)?;
            UserInfo::new(user.clone(), &groups.iter().map(String::as_str).collect::<Vec<_>>())
        }
    };
    for group in &groups {
        check("", "groups", "", "", group)?;
    }
    if let Some(uid) = &uid {
        check("authentication.k8s.io", "uids", "", "", uid)?;
    }
    for key in &extras {
        for value in header_values(headers, &format!("impersonate-extra-{key}")) {
            check("authentication.k8s.io", "userextras", key, "", value)?;
        }
    }
    Ok(impersonated)
}
