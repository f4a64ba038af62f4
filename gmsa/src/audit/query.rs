//! Which audit entries a query picks (`fleetctl audit log` and `export`). Pure.

use proto::audit::AuditEntry;
use time::OffsetDateTime;

/// A query's filters; `None` picks all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub cluster: Option<String>,
    pub rollout: Option<String>,
    pub kind: Option<String>,
    /// An actor, as recorded (`operator:ann`) or by name alone (`ann`).
    pub actor: Option<String>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
}

impl Filter {
    /// Whether `entry` passes every filter.
    pub fn matches(&self, entry: &AuditEntry) -> bool {
        let actor_matches =
            |wanted: &str| entry.actor == wanted || entry.actor.split_once(':').is_some_and(|(_, name)| name == wanted);
        self.cluster.as_ref().is_none_or(|cluster| entry.cluster.as_ref() == Some(cluster))
            && self.rollout.as_ref().is_none_or(|rollout| entry.rollout.as_ref() == Some(rollout))
            && self.kind.as_ref().is_none_or(|kind| entry.kind() == kind)
            && self.actor.as_deref().is_none_or(actor_matches)
            && self.since.is_none_or(|since| entry.at >= since)
            && self.until.is_none_or(|until| entry.at < until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::audit::AuditEvent;

    #[test]
    fn filters_combine() {
        let mut entry = AuditEntry::draft(
            OffsetDateTime::UNIX_EPOCH + time::Duration::hours(1),
            "operator:ann",
            AuditEvent::Progress { step: "s".into(), message: "m".into() },
        );
        entry.cluster = Some("c1".into());
        assert!(Filter::default().matches(&entry));
        assert!(
            Filter { actor: Some("ann".into()), kind: Some("progress".into()), ..Filter::default() }.matches(&entry)
        );
        assert!(Filter { actor: Some("operator:ann".into()), ..Filter::default() }.matches(&entry));
        assert!(!Filter { actor: Some("bob".into()), ..Filter::default() }.matches(&entry));
        assert!(!Filter { cluster: Some("c2".into()), ..Filter::default() }.matches(&entry));
        assert!(!Filter { rollout: Some("r".into()), ..Filter::default() }.matches(&entry));
        assert!(
            !Filter { since: Some(OffsetDateTime::UNIX_EPOCH + time::Duration::hours(2)), ..Filter::default() }
                .matches(&entry)
        );
        assert!(
            !Filter { until: Some(OffsetDateTime::UNIX_EPOCH + time::Duration::hours(1)), ..Filter::default() }
                .matches(&entry)
        );
    }
}
