//! `fleetctl clusters show` end to end: a rollout applies the desired state through agents with
//! the production executor on the simulators, then an out-of-band change the drift watch reports
//! (policy `report-only`, so it stays) takes the cluster out of sync, and re-running the rollout
//! brings it back. The view is read with the library function fleetctl calls.

use coordinator::clusters::sync::{Reason, SyncState};
use coordinator::clusters::{ClusterView, Judged, parts::Part};
use coordinator::rollouts::api::{RolloutReply, RolloutRequest};
use std::time::{Duration, Instant};
use testkit::nats::NatsServer;
use tests::fleet::{start_coordinator, test_settings};
use tests::world::SimWorld;

const WAIT: Duration = Duration::from_secs(90);

async fn start_rollout(bus: &bus::Bus, file: &proto::rollout::RolloutFile) -> String {
    let request =
        RolloutRequest::Start { file: Box::new(file.clone()), dry_run: false, requested_by: Some("test".into()) };
    match coordinator::rollout_verbs::request(bus, &request).await.unwrap() {
        RolloutReply::Started { rollout_id, .. } => rollout_id,
        other => panic!("{other:?}"),
    }
}

/// Reads the cluster's view (as `fleetctl clusters show` does) until `done` holds.
async fn show_until(bus: &bus::Bus, cluster: &str, what: &str, done: impl Fn(&ClusterView) -> bool) -> ClusterView {
    let started = Instant::now();
    loop {
        let judged = Judged { now: time::OffsetDateTime::now_utc(), unreachable_after: time::Duration::minutes(10) };
        let view = coordinator::clusters::show(bus, cluster, judged).await.unwrap();
        if done(&view) {
            return view;
        }
        assert!(started.elapsed() < WAIT, "{what}: {view:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_show_is_in_sync_after_a_rollout_drifted_after_an_out_of_band_change_and_in_sync_after_a_reapply() {
    let server = NatsServer::start().unwrap();
    let world = SimWorld::build("sync", 1, 1).await.unwrap();
    let coordinator = start_coordinator(&server.url(), world.declared()).await.unwrap();
    let agents = world
        .spawn_agents_configured(
            &server.url(),
            |cluster: &str| test_settings(cluster, &[]),
            |config| config.drift_policy = cluster::DriftPolicy::ReportOnly,
        )
        .await
        .unwrap();
    let cluster = &world.clusters[0];
    let bus = &coordinator.bus;
    let file = tests::fleet::rollout_file("sync", "  stages:\n    - {name: all}\n").unwrap();

    // Before any rollout: nothing is desired.
    let before = show_until(bus, &cluster.id, "no desired state", |_| true).await;
    assert_eq!(before.sync.state, SyncState::NotTargeted);
    assert_eq!(before.sync.reasons, [Reason::NoDesiredState]);

    // The rollout applies the desired state: every part it sets up is reported by it.
    let first = start_rollout(bus, &file).await;
    let view = show_until(bus, &cluster.id, "in sync after the rollout", |view| view.sync.in_sync).await;
    let desired = view.desired.as_ref().unwrap();
    assert_eq!((desired.rollout_id.as_str(), desired.selected), (first.as_str(), true));
    assert_eq!(desired.parts, [Part::GmsaProfile, Part::IdentityGrant, Part::Credspec]);
    for part in &desired.parts {
        let last = view.parts.iter().find(|seen| seen.part == *part).and_then(|seen| seen.last.as_ref()).unwrap();
        assert_eq!(last.rollout_id.as_deref(), Some(first.as_str()), "{part:?}: {last:?}");
        assert!(last.outcome.is_applied(), "{part:?}: {last:?}");
    }
    let credspec = view.parts.iter().find(|seen| seen.part == Part::Credspec).unwrap().last.clone().unwrap();
    assert_eq!((credspec.step.as_str(), credspec.kind.as_str()), ("credspec-apply", "apply-credspec"));
    assert!(!credspec.diff.is_empty(), "the first apply wrote the credspec: {credspec:?}");

    // Someone deletes the RoleBinding behind the agent's back; under report-only it stays deleted.
    let binding = "allow-default-svc-account-read-on-aks-gmsa-spec";
    assert!(cluster.kube.get("RoleBinding", Some("default"), binding).is_some());
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.kube.delete("RoleBinding", Some("default"), binding).unwrap();
    let drifted = show_until(bus, &cluster.id, "drifted", |view| view.sync.state == SyncState::Drifted).await;
    assert!(!drifted.sync.in_sync);
    assert!(
        drifted.sync.reasons.iter().any(|reason| matches!(
            reason,
            Reason::Drifted { kind, name, cause, remedy, .. }
                if kind == "RoleBinding" && name == binding && cause == "deleted" && remedy == "reported"
        )),
        "{:?}",
        drifted.sync.reasons
    );
    assert!(drifted.drift.iter().any(|report| report.name == binding), "the record keeps the report");
    // Its last audit entries show the drift report too (the writer may lag the recorder).
    let audited = show_until(bus, &cluster.id, "the drift in the audit", |view| {
        view.audit.iter().any(|entry| entry.kind() == "drift")
    })
    .await;
    assert!(audited.audit.len() <= coordinator::clusters::AUDIT_TAIL);
    assert!(audited.audit.iter().all(|entry| entry.cluster.as_deref() == Some(cluster.id.as_str())));
    assert!(cluster.kube.get("RoleBinding", Some("default"), binding).is_none(), "report-only re-applies nothing");

    // Re-running the rollout (a new desired revision) puts it back: in sync again.
    let second = start_rollout(bus, &file).await;
    assert_ne!(first, second);
    let view = show_until(bus, &cluster.id, "in sync after the re-apply", |view| {
        view.sync.in_sync && view.desired.as_ref().is_some_and(|desired| desired.rollout_id == second)
    })
    .await;
    assert!(cluster.kube.get("RoleBinding", Some("default"), binding).is_some(), "the rollout re-applied it");
    assert!(!view.drift.is_empty(), "the old report is still shown, superseded by the apply");

    // The fleet listing agrees, and --out-of-sync leaves the cluster out.
    let judged = Judged { now: time::OffsetDateTime::now_utc(), unreachable_after: time::Duration::minutes(10) };
    let listing =
        coordinator::clusters::list(bus, &gmsa::selector::Selector::parse("").unwrap(), judged).await.unwrap();
    assert_eq!((listing.summary.clusters, listing.summary.in_sync), (1, 1));
    assert_eq!(listing.summary.desired_rollout_id.as_deref(), Some(second.as_str()));
    assert!(listing.views.iter().all(|view| !view.sync.needs_attention()));

    for agent in agents {
        agent.stop().await.unwrap();
    }
    coordinator.stop().await;
}
