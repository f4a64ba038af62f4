//! `fleet.ctl.agents`: enrolling and revoking agents' identities. The coordinator is the only
//! writer of `fleet_enrollments`; what it records there decides whose results count (the result
//! feed and every lookup verify a cluster's results against its enrolled, unrevoked key).
//!
//! Refuses: a cluster id that is not a subject token, a key that does not parse, revoking a
//! cluster that was never enrolled. Enrolling again replaces the key (re-keying an agent) and
//! clears a revocation; the secret key never reaches the coordinator (`fleetctl agents enroll`
//! generates it and sends the public half).

use crate::control::serve_requests;
use bus::{Bus, BusError};
use proto::identity::{AgentsReply, AgentsRequest, Enrollment};
use proto::subjects;
use time::OffsetDateTime;
use tokio::sync::watch;
use tracing::{info, info_span};

/// The control verb's name (`fleet.ctl.agents`).
pub const VERB: &str = "agents";

/// What an enroll or revoke request does to the stored enrollment (pure): the new enrollment, or
/// the refusal code and message.
pub fn next_enrollment(
    current: Option<Enrollment>,
    request: &AgentsRequest,
    by: Option<String>,
    now: OffsetDateTime,
) -> Result<Option<Enrollment>, (&'static str, String)> {
    match request {
        AgentsRequest::Enroll { cluster, public_key } => {
            if !subjects::is_valid_token(cluster) {
                return Err((
                    "invalid_request",
                    format!("cluster: {cluster:?} must be 1-63 letters, digits, '-' or '_'"),
                ));
            }
            let key = gmsa::signing::PublicKey::parse(public_key)
                .map_err(|err| ("invalid_request", format!("public_key: {err}")))?;
            Ok(Some(Enrollment {
                cluster: cluster.clone(),
                public_key: key.to_string(),
                enrolled_at: now,
                enrolled_by: by,
                revoked_at: None,
                revoked_by: None,
            }))
        }
        AgentsRequest::Revoke { cluster } => {
            let Some(mut enrollment) = current else {
                return Err(("not_enrolled", format!("{cluster:?} has no enrollment to revoke")));
            };
            if enrollment.revoked_at.is_none() {
                enrollment.revoked_at = Some(now);
                enrollment.revoked_by = by;
            }
            Ok(Some(enrollment))
        }
        AgentsRequest::List => Ok(None),
    }
}

/// Answers one request.
pub async fn answer(bus: &Bus, request: AgentsRequest, by: Option<String>) -> Result<AgentsReply, BusError> {
    let bucket = bus::kv::enrollments(bus).await?;
    let cluster = match &request {
        AgentsRequest::Enroll { cluster, .. } | AgentsRequest::Revoke { cluster } => cluster.clone(),
        AgentsRequest::List => {
            let mut enrollments: Vec<Enrollment> = bucket
                .entries_raw()
                .await?
                .into_iter()
                .filter_map(|(_, bytes)| serde_json::from_slice(&bytes).ok())
                .collect();
            enrollments.sort_by(|a, b| a.cluster.cmp(&b.cluster));
            return Ok(AgentsReply::List { enrollments });
        }
    };
    let current = if subjects::is_valid_token(&cluster) { bucket.get(&cluster).await.ok().flatten() } else { None };
    let (current, revision) = match current {
        Some((enrollment, revision)) => (Some(enrollment), revision),
        None => (None, 0),
    };
    let next = match next_enrollment(current, &request, by, OffsetDateTime::now_utc()) {
        Ok(Some(next)) => next,
        Ok(None) => {
            return Ok(AgentsReply::Refused { code: "invalid_request".into(), message: "nothing to do".into() });
        }
        Err((code, message)) => return Ok(AgentsReply::Refused { code: code.into(), message }),
    };
    bucket.update(&cluster, &next, revision).await?;
    info!(cluster = %cluster, revoked = next.revoked_at.is_some(), by = ?next.enrolled_by, "enrollment written");
    Ok(match request {
        AgentsRequest::Revoke { .. } => AgentsReply::Revoked { enrollment: next },
        _ => AgentsReply::Enrolled { enrollment: next },
    })
}

/// Serves `fleet.ctl.agents` until `shutdown`.
pub async fn serve(
    bus: Bus,
    operators: std::sync::Arc<crate::authz::Operators>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), BusError> {
    serve_requests(
        bus,
        subjects::control(VERB),
        shutdown,
        || info_span!("control.agents"),
        operators,
        |payload| match serde_json::from_slice::<AgentsRequest>(payload) {
            Ok(AgentsRequest::List) => proto::identity::Role::ReadOnly,
            _ => proto::identity::Role::Operate,
        },
        |bus, payload, actor| async move {
            match serde_json::from_slice::<AgentsRequest>(&payload) {
                Ok(request) => answer(&bus, request, Some(actor))
                    .await
                    .unwrap_or_else(|err| AgentsReply::Refused { code: "bus_error".into(), message: bus::chain(&err) }),
                Err(err) => AgentsReply::Refused {
                    code: "invalid_request".into(),
                    message: proto::decode::bounded(&format!("not an agents request: {err}"), 2048),
                },
            }
        },
        |code, message| AgentsReply::Refused { code: code.into(), message },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const KEY: &str = "ed25519:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE";

    #[test]
    fn enroll_revoke_and_re_enroll() {
        let now = datetime!(2026-12-02 08:00 UTC);
        let enroll = AgentsRequest::Enroll { cluster: "aks-1".into(), public_key: KEY.into() };
        let enrolled = next_enrollment(None, &enroll, Some("ops".into()), now).unwrap().unwrap();
        assert_eq!((enrolled.public_key.as_str(), enrolled.revoked_at), (KEY, None));
        let revoke = AgentsRequest::Revoke { cluster: "aks-1".into() };
        let revoked = next_enrollment(Some(enrolled.clone()), &revoke, None, now).unwrap().unwrap();
        assert_eq!(revoked.revoked_at, Some(now));
        assert!(bus::enrollment::key_of(&revoked).is_none());
        assert!(bus::enrollment::key_of(&enrolled).is_some());
        let again = next_enrollment(Some(revoked), &enroll, None, now).unwrap().unwrap();
        assert_eq!(again.revoked_at, None);
    }

    #[test]
    fn refusals_name_the_rule() {
        let now = datetime!(2026-12-02 08:00 UTC);
        let bad_id = AgentsRequest::Enroll { cluster: "a.b".into(), public_key: KEY.into() };
        assert_eq!(next_enrollment(None, &bad_id, None, now).unwrap_err().0, "invalid_request");
        let bad_key = AgentsRequest::Enroll { cluster: "a".into(), public_key: "ed25519:xyz".into() };
        assert!(next_enrollment(None, &bad_key, None, now).unwrap_err().1.starts_with("public_key:"));
        let unknown = AgentsRequest::Revoke { cluster: "nobody".into() };
        assert_eq!(next_enrollment(None, &unknown, None, now).unwrap_err().0, "not_enrolled");
    }
}
