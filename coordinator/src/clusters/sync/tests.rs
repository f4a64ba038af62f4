//! The in-sync decision: one test per reason, and properties over arbitrary observations.

use super::*;
use proptest::prelude::*;
use proto::version::SchemaVersion;

const DESIRED: &str = "r2";

fn at(secs: i64) -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(secs)
}

fn mk_desired(selected: bool) -> DesiredFor {
    DesiredFor {
        rollout_id: DESIRED.into(),
        selected,
        parts: vec![Part::GmsaProfile, Part::IdentityGrant, Part::Credspec],
    }
}

fn mk_observation(rollout_id: &str, outcome: PartOutcome, secs: i64) -> PartObservation {
    PartObservation {
        step: "credspec-apply".into(),
        outcome,
        diff: vec![],
        at: at(secs),
        command_id: format!("{rollout_id}-c"),
        kind: "apply-credspec".into(),
        rollout_id: Some(rollout_id.into()),
        code: (outcome == PartOutcome::Failed).then(|| "credspec_apply_failed".into()),
        message: (outcome == PartOutcome::Failed).then(|| "denied".into()),
    }
}

fn mk_applied(secs: i64) -> BTreeMap<Part, PartObservation> {
    [Part::GmsaProfile, Part::IdentityGrant, Part::Credspec]
        .into_iter()
        .map(|part| (part, mk_observation(DESIRED, PartOutcome::Changed, secs)))
        .collect()
}

fn mk_drift(name: &str, remedy: &str, secs: i64) -> DriftReport {
    DriftReport {
        schema: SchemaVersion::CURRENT,
        cluster: "a".into(),
        kind: "RoleBinding".into(),
        namespace: Some("default".into()),
        name: name.into(),
        cause: "deleted".into(),
        diff: vec![],
        remedy: remedy.into(),
        detail: None,
        at: at(secs),
    }
}

fn decide_with(
    desired: Option<&DesiredFor>,
    parts: &BTreeMap<Part, PartObservation>,
    drift: &[DriftReport],
    last_seen: Option<i64>,
) -> Verdict {
    decide(&SyncInput {
        desired,
        parts,
        drift,
        last_seen: last_seen.map(at),
        now: at(1_000),
        unreachable_after: time::Duration::minutes(10),
    })
}

#[test]
fn every_part_applied_by_the_desired_rollout_and_a_recent_hello_is_in_sync() {
    let desired = mk_desired(true);
    let verdict = decide_with(Some(&desired), &mk_applied(100), &[], Some(990));
    assert_eq!(verdict, Verdict { state: SyncState::InSync, in_sync: true, reasons: vec![] });
    // Unchanged is as good as changed; a part the file does not ask for is not looked at.
    let mut parts = mk_applied(100);
    parts.insert(Part::GmsaProfile, mk_observation(DESIRED, PartOutcome::Unchanged, 100));
    parts.insert(Part::Rotation, mk_observation("r0", PartOutcome::Failed, 50));
    assert!(decide_with(Some(&desired), &parts, &[], Some(990)).in_sync);
}

#[test]
fn a_part_never_reported_is_never_applied() {
    let desired = mk_desired(true);
    let mut parts = mk_applied(100);
    parts.remove(&Part::IdentityGrant);
    let verdict = decide_with(Some(&desired), &parts, &[], Some(990));
    assert_eq!(verdict.state, SyncState::Pending);
    assert_eq!(verdict.reasons, [Reason::NeverApplied { part: Part::IdentityGrant }]);
}

#[test]
fn a_failure_for_the_desired_revision_is_failed_and_one_for_an_older_revision_is_pending() {
    let desired = mk_desired(true);
    let mut parts = mk_applied(100);
    parts.insert(Part::Credspec, mk_observation(DESIRED, PartOutcome::Failed, 100));
    let verdict = decide_with(Some(&desired), &parts, &[], Some(990));
    assert_eq!(verdict.state, SyncState::Failed);
    assert!(
        matches!(&verdict.reasons[..], [Reason::Failed { part: Part::Credspec, code, .. }] if code == "credspec_apply_failed")
    );
    parts.insert(Part::Credspec, mk_observation("r1", PartOutcome::Failed, 100));
    let verdict = decide_with(Some(&desired), &parts, &[], Some(990));
    assert_eq!(verdict.state, SyncState::Pending);
    assert!(matches!(&verdict.reasons[..], [Reason::OlderRevision { observed: Some(r), .. }] if r == "r1"));
}

#[test]
fn a_result_of_an_older_rollout_or_a_dry_run_is_an_older_revision() {
    let desired = mk_desired(true);
    let mut parts = mk_applied(100);
    parts.insert(Part::GmsaProfile, mk_observation("r1", PartOutcome::Changed, 200));
    parts.insert(Part::Credspec, mk_observation(DESIRED, PartOutcome::Planned, 200));
    let verdict = decide_with(Some(&desired), &parts, &[], Some(990));
    assert_eq!(verdict.reasons.len(), 2, "{verdict:?}");
    assert!(verdict.reasons.iter().all(|reason| matches!(reason, Reason::OlderRevision { .. })));
}

#[test]
fn drift_after_the_last_apply_that_was_not_reapplied_is_drifted() {
    let desired = mk_desired(true);
    let parts = mk_applied(100);
    let verdict = decide_with(Some(&desired), &parts, &[mk_drift("rb", "reported", 150)], Some(990));
    assert_eq!(verdict.state, SyncState::Drifted);
    assert!(
        matches!(&verdict.reasons[..], [Reason::Drifted { name, remedy, .. }] if name == "rb" && remedy == "reported")
    );
    let failed = decide_with(Some(&desired), &parts, &[mk_drift("rb", "reapply-failed", 150)], Some(990));
    assert_eq!(failed.state, SyncState::Drifted);
    // Re-applied by the agent, or older than the last apply: nothing stands.
    assert!(decide_with(Some(&desired), &parts, &[mk_drift("rb", "reapplied", 150)], Some(990)).in_sync);
    assert!(decide_with(Some(&desired), &parts, &[mk_drift("rb", "reported", 50)], Some(990)).in_sync);
    // A later re-apply of the same object supersedes its earlier failure; another object's does not.
    let later = [mk_drift("rb", "reapply-failed", 150), mk_drift("rb", "reapplied", 160)];
    assert!(decide_with(Some(&desired), &parts, &later, Some(990)).in_sync);
    let other = [mk_drift("rb", "reapply-failed", 150), mk_drift("other", "reapplied", 160)];
    assert_eq!(decide_with(Some(&desired), &parts, &other, Some(990)).state, SyncState::Drifted);
}

#[test]
fn no_hello_within_the_threshold_is_unreachable_and_worst() {
    let desired = mk_desired(true);
    let mut parts = mk_applied(100);
    parts.insert(Part::Credspec, mk_observation(DESIRED, PartOutcome::Failed, 100));
    // now = 1000, threshold 600 s: 399 is too old, 400 is just in time.
    let verdict = decide_with(Some(&desired), &parts, &[], Some(399));
    assert_eq!(verdict.state, SyncState::Unreachable);
    assert!(matches!(verdict.reasons[0], Reason::Unreachable { after_secs: 600, .. }));
    assert_eq!(verdict.reasons.len(), 2, "the failure is still listed");
    assert_eq!(decide_with(Some(&desired), &mk_applied(100), &[], Some(400)).state, SyncState::InSync);
    let never = decide_with(Some(&desired), &mk_applied(100), &[], None);
    assert!(matches!(never.reasons[..], [Reason::Unreachable { last_seen: None, .. }]));
}

#[test]
fn a_threshold_beyond_times_range_is_checked_not_overflowed() {
    let desired = mk_desired(true);
    let verdict = decide(&SyncInput {
        desired: Some(&desired),
        parts: &mk_applied(100),
        drift: &[],
        last_seen: Some(at(1)),
        now: at(1_000),
        unreachable_after: time::Duration::MAX,
    });
    assert!(verdict.in_sync, "{verdict:?}");
}

#[test]
fn no_desired_state_or_a_selector_that_does_not_pick_the_cluster_is_not_targeted() {
    let none = decide_with(None, &BTreeMap::new(), &[], Some(990));
    assert_eq!((none.state, none.in_sync), (SyncState::NotTargeted, false));
    assert!(!none.needs_attention());
    let desired = mk_desired(false);
    let verdict = decide_with(Some(&desired), &BTreeMap::new(), &[mk_drift("rb", "reported", 150)], Some(990));
    assert_eq!(verdict.reasons, [Reason::NotSelected { rollout_id: DESIRED.into() }]);
}

fn outcome_strategy() -> impl Strategy<Value = PartOutcome> {
    prop_oneof![
        Just(PartOutcome::Changed),
        Just(PartOutcome::Unchanged),
        Just(PartOutcome::Planned),
        Just(PartOutcome::Failed),
        Just(PartOutcome::Unknown),
    ]
}

fn parts_strategy() -> impl Strategy<Value = BTreeMap<Part, PartObservation>> {
    let observation = (prop_oneof![Just("r1"), Just(DESIRED)], outcome_strategy(), 0i64..1_000)
        .prop_map(|(rollout, outcome, secs)| mk_observation(rollout, outcome, secs));
    proptest::collection::btree_map(proptest::sample::select(Part::ALL.to_vec()), observation, 0..5)
}

fn drift_strategy() -> impl Strategy<Value = Vec<DriftReport>> {
    let report = (
        prop_oneof![Just("rb"), Just("role"), Just("spec")],
        prop_oneof![Just("reported"), Just("reapplied"), Just("reapply-failed"), Just("newer")],
        0i64..1_000,
    )
        .prop_map(|(name, remedy, secs)| mk_drift(name, remedy, secs));
    proptest::collection::vec(report, 0..6)
}

proptest! {
    /// In sync exactly when no reason stands, and the state is the worst reason's.
    #[test]
    fn in_sync_iff_no_reasons(parts in parts_strategy(), drift in drift_strategy(), seen in proptest::option::of(0i64..1_000), selected: bool) {
        let desired = mk_desired(selected);
        let verdict = decide_with(Some(&desired), &parts, &drift, seen);
        prop_assert_eq!(verdict.in_sync, verdict.reasons.is_empty());
        prop_assert_eq!(verdict.in_sync, verdict.state == SyncState::InSync);
        if verdict.reasons.iter().any(|reason| matches!(reason, Reason::Unreachable { .. })) {
            prop_assert_eq!(verdict.state, SyncState::Unreachable);
        }
    }

    /// Re-applying every part with the desired rollout after every drift report, with the agent
    /// reachable, always brings a selected cluster back in sync.
    #[test]
    fn a_reapply_after_all_drift_is_in_sync(parts in parts_strategy(), drift in drift_strategy()) {
        let desired = mk_desired(true);
        let mut parts = parts;
        for part in &desired.parts {
            parts.insert(*part, mk_observation(DESIRED, PartOutcome::Unchanged, 1_000));
        }
        let verdict = decide_with(Some(&desired), &parts, &drift, Some(999));
        prop_assert!(verdict.in_sync, "{:?}", verdict);
    }

    /// A standing drift report (not re-applied, after the last apply) never leaves a cluster in sync.
    #[test]
    fn standing_drift_is_never_in_sync(parts in parts_strategy(), drift in drift_strategy(), late in 0i64..10) {
        let desired = mk_desired(true);
        let mut drift = drift;
        let after = parts.get(&Part::Credspec).map_or(0, |observed| observed.at.unix_timestamp()) + 1 + late;
        drift.push(mk_drift("rb", "reported", after.max(1_000) + late));
        let verdict = decide_with(Some(&desired), &parts, &drift, Some(999));
        prop_assert!(!verdict.in_sync);
        let drifted = verdict.reasons.iter().any(|reason| matches!(reason, Reason::Drifted { .. }));
        prop_assert!(drifted, "{:?}", verdict);
    }
}
