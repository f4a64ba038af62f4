//! One rotation of a credential, as a state the coordinator persists, and the decision of what
//! to do next from what it sees in the vaults.
//!
//! Guarantees ([`next_step`]):
//! - the idle user is reset only while no vault holds a version of this run — so a reset whose
//!   password never reached Key Vault is simply done again (nothing reads the idle user's
//!   password), and once one vault holds it the password is never reset again in this run;
//! - a vault that holds a version of this run (found by its [`super::RUN_TAG`] tag, whether or
//!   not the run recorded it before a crash) is never written again; the vaults still lacking one
//!   get the **same** value, copied from a version of this run;
//! - the rollout starts only when every target holds a version of this run.

use crate::rollout::Plan;
use proto::command::VaultRef;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;

/// One secret a rotation writes: all the clusters whose setup names it share one new version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// `<subscription>/<resource group>/<vault>/<secret>`: the version map's key.
    pub key: String,
    pub vault: VaultRef,
    pub secret_name: String,
    /// The clusters of the fleet's desired state that name this secret, in id order.
    pub clusters: Vec<String>,
}

/// The key of a vault's secret in [`RotationRun::versions`].
pub fn target_key(vault: &VaultRef, secret_name: &str) -> String {
    format!(
        "{}/{}/{}/{}",
        vault.subscription_id.to_ascii_lowercase(),
        vault.resource_group.to_ascii_lowercase(),
        vault.name.to_ascii_lowercase(),
        secret_name.to_ascii_lowercase()
    )
}

/// The secrets of a planned fleet, each with the clusters that share it (a vault shared by many
/// clusters is one target; clusters with a vault each are one target each).
pub fn targets_of(plan: &Plan) -> Vec<Target> {
    let mut targets: BTreeMap<String, Target> = BTreeMap::new();
    for cluster in plan.clusters.keys() {
        let Some(setup) = plan.setup_of(cluster) else { continue };
        let key = target_key(&setup.vault, &setup.secret_name);
        targets
            .entry(key.clone())
            .or_insert_with(|| Target {
                key,
                vault: setup.vault.clone(),
                secret_name: setup.secret_name,
                clusters: vec![],
            })
            .clusters
            .push(cluster.clone());
    }
    targets.into_values().collect()
}

/// Where a rotation is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunPhase {
    /// The idle user's password is (being) reset.
    Resetting,
    /// The new credential is (being) written, one version per target.
    Writing,
    /// Every target holds the new version; `rotate-credential` rolls out to the clusters.
    RollingOut,
    /// Every cluster confirmed; the target user is the active one.
    Completed,
    /// Stopped; Key Vault still names a user whose password works (see `message`).
    Failed { code: String, message: String },
    /// Written by a newer coordinator.
    #[serde(other)]
    Unknown,
}

/// One rotation, as persisted after every phase change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationRun {
    pub run_id: String,
    pub credential: String,
    /// The `DOMAIN` part of the credential string (`DOMAIN\\user:password`), as the vaults hold it.
    #[serde(default)]
    pub domain: String,
    /// The idle user being reset: the active user when the run completes.
    pub target_user: String,
    /// The user Key Vault named when the run started.
    pub previous_user: String,
    pub phase: RunPhase,
    pub targets: Vec<Target>,
    /// Versions of this run, by target key.
    #[serde(default)]
    pub versions: BTreeMap<String, String>,
    /// The latest version of each target when the run started (naming the previous user): what
    /// a rollback copies into a new version.
    #[serde(default)]
    pub previous_versions: BTreeMap<String, String>,
    /// How many times the target user's password was reset (more than one: a resumed run).
    #[serde(default)]
    pub resets: u32,
    /// Key Vault writes this run made (copies included); at most one per target.
    #[serde(default)]
    pub writes: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_id: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

impl RotationRun {
    /// True once nothing more happens in this run.
    pub fn finished(&self) -> bool {
        matches!(self.phase, RunPhase::Completed | RunPhase::Failed { .. } | RunPhase::Unknown)
    }

    /// Whether [`next_step`] needs to know what the vaults hold: only before the rollout (once it
    /// starts, the run's record holds every version and nothing is written any more).
    pub fn needs_views(&self) -> bool {
        matches!(self.phase, RunPhase::Resetting | RunPhase::Writing)
    }

    /// The rollout id of this run's `rotate-credential` rollout: fixed by the run id, so a
    /// coordinator that crashed after starting it finds it instead of starting another.
    pub fn rollout_id_of(run_id: &str) -> String {
        format!("rot-{run_id}")
    }
}

/// What the coordinator sees of one target now: the version of this run it holds, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetView {
    pub key: String,
    pub tagged_version: Option<String>,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Reset the target user's password (it is idle) and confirm it by a bind.
    Reset,
    /// Write the password held in memory to these targets (new versions tagged with the run).
    Write { keys: Vec<String> },
    /// The password is not in memory (a resumed run) but `from` holds this run's `version`: read
    /// it there and write it to `to`.
    CopyFrom { from: String, version: String, to: Vec<String> },
    /// Every target holds a version of this run: start or follow the rollout.
    RollOut { versions: BTreeMap<String, String> },
    /// Nothing more to do.
    Done,
}

/// The versions of this run known from the record and seen in the vaults, by target key.
pub fn known_versions(run: &RotationRun, views: &[TargetView]) -> BTreeMap<String, String> {
    let mut versions = run.versions.clone();
    for view in views {
        if let Some(version) = &view.tagged_version {
            versions.entry(view.key.clone()).or_insert_with(|| version.clone());
        }
    }
    versions.retain(|key, _| run.targets.iter().any(|target| &target.key == key));
    versions
}

/// Decides the next step of `run` from `views` (one per target, read just now) and whether the
/// new password is still in this process's memory.
pub fn next_step(run: &RotationRun, views: &[TargetView], password_in_memory: bool) -> Next {
    match run.phase {
        RunPhase::Completed | RunPhase::Failed { .. } | RunPhase::Unknown => Next::Done,
        RunPhase::Resetting if !password_in_memory => {
            // A crash may have come after a write that the record does not show yet.
            let versions = known_versions(run, views);
            if versions.is_empty() { Next::Reset } else { after_reset(run, versions, false) }
        }
        RunPhase::Resetting | RunPhase::Writing => after_reset(run, known_versions(run, views), password_in_memory),
        RunPhase::RollingOut => Next::RollOut { versions: known_versions(run, views) },
    }
}

fn after_reset(run: &RotationRun, versions: BTreeMap<String, String>, password_in_memory: bool) -> Next {
    let missing: Vec<String> =
        run.targets.iter().filter(|target| !versions.contains_key(&target.key)).map(|t| t.key.clone()).collect();
    if missing.is_empty() {
        return Next::RollOut { versions };
    }
    if password_in_memory {
        return Next::Write { keys: missing };
    }
    match versions.into_iter().next() {
        Some((from, version)) => Next::CopyFrom { from, version, to: missing },
        None => Next::Reset,
    }
}

/// Why a rotation cannot start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    #[error("secret {key} does not exist yet: run the setup rollout first")]
    SecretMissing { key: String },
    #[error("secret {key} names {user:?}, which is neither of the credential's users ({a}, {b})")]
    ForeignUser { key: String, user: String, a: String, b: String },
    #[error("the vaults disagree on the active user: {first} names {first_user}, {second} names {second_user}")]
    Disagree { first: String, first_user: String, second: String, second_user: String },
    #[error("the credential has no targets: no cluster of the desired state names a secret")]
    NoTargets,
}

impl StartError {
    /// A stable code.
    pub fn code(&self) -> &'static str {
        match self {
            StartError::SecretMissing { .. } => "secret_missing",
            StartError::ForeignUser { .. } => "foreign_user",
            StartError::Disagree { .. } => "vaults_disagree",
            StartError::NoTargets => "no_targets",
        }
    }
}

/// The active user — the one every target's latest version names — and the idle one. `named`
/// is each target's key with the user its latest version names (`None`: no secret).
pub fn active_user(users: [&str; 2], named: &[(String, Option<String>)]) -> Result<(String, String), StartError> {
    let mut first: Option<(&str, &str)> = None;
    for (key, user) in named {
        let user = user.as_deref().ok_or_else(|| StartError::SecretMissing { key: key.clone() })?;
        if !users.iter().any(|known| known.eq_ignore_ascii_case(user)) {
            return Err(StartError::ForeignUser {
                key: key.clone(),
                user: user.to_string(),
                a: users[0].into(),
                b: users[1].into(),
            });
        }
        match first {
            None => first = Some((key, user)),
            Some((first_key, first_user)) if !first_user.eq_ignore_ascii_case(user) => {
                return Err(StartError::Disagree {
                    first: first_key.into(),
                    first_user: first_user.into(),
                    second: key.clone(),
                    second_user: user.into(),
                });
            }
            Some(_) => {}
        }
    }
    let (_, active) = first.ok_or(StartError::NoTargets)?;
    let active = if users[0].eq_ignore_ascii_case(active) { users[0] } else { users[1] };
    let idle = if active == users[0] { users[1] } else { users[0] };
    Ok((active.to_string(), idle.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    fn target(key: &str) -> Target {
        Target {
            key: key.into(),
            vault: VaultRef { subscription_id: "s".into(), resource_group: "rg".into(), name: key.into() },
            secret_name: "GMSADomainUserCred".into(),
            clusters: vec![format!("c-{key}")],
        }
    }

    fn run(phase: RunPhase, keys: &[&str]) -> RotationRun {
        RotationRun {
            run_id: "r1".into(),
            credential: "svc".into(),
            domain: "CONTOSO".into(),
            target_user: "svc-b".into(),
            previous_user: "svc".into(),
            phase,
            targets: keys.iter().map(|key| target(key)).collect(),
            versions: BTreeMap::new(),
            previous_versions: BTreeMap::new(),
            resets: 0,
            writes: 0,
            rollout_id: None,
            started_at: datetime!(2026-12-01 00:00 UTC),
            finished_at: None,
            requested_by: None,
        }
    }

    fn views(tagged: &[(&str, Option<&str>)]) -> Vec<TargetView> {
        tagged.iter().map(|(key, v)| TargetView { key: (*key).into(), tagged_version: v.map(str::to_string) }).collect()
    }

    #[test]
    fn a_fresh_run_resets_then_writes_every_target_then_rolls_out() {
        let mut r = run(RunPhase::Resetting, &["v1", "v2"]);
        assert_eq!(next_step(&r, &views(&[("v1", None), ("v2", None)]), false), Next::Reset);
        r.phase = RunPhase::Writing;
        assert_eq!(
            next_step(&r, &views(&[("v1", None), ("v2", None)]), true),
            Next::Write { keys: vec!["v1".into(), "v2".into()] }
        );
        r.versions.insert("v1".into(), "a".repeat(32));
        assert_eq!(next_step(&r, &views(&[("v1", None), ("v2", None)]), true), Next::Write { keys: vec!["v2".into()] });
        let all = views(&[("v1", Some("x")), ("v2", Some("y"))]);
        let Next::RollOut { versions } = next_step(&r, &all, true) else { panic!() };
        assert_eq!(versions.len(), 2);
        assert_eq!(versions["v1"], "a".repeat(32), "the record wins over what is seen");
    }

    #[test]
    fn a_resumed_run_without_the_password_resets_only_if_no_vault_got_it() {
        let r = run(RunPhase::Writing, &["v1", "v2"]);
        assert_eq!(next_step(&r, &views(&[("v1", None), ("v2", None)]), false), Next::Reset);
        assert_eq!(
            next_step(&r, &views(&[("v1", None), ("v2", Some("ver2"))]), false),
            Next::CopyFrom { from: "v2".into(), version: "ver2".into(), to: vec!["v1".into()] }
        );
        // Killed after the write but before the record showed the phase change.
        let r = run(RunPhase::Resetting, &["v1"]);
        assert!(matches!(next_step(&r, &views(&[("v1", Some("ver1"))]), false), Next::RollOut { .. }));
    }

    #[test]
    fn finished_runs_do_nothing() {
        for phase in
            [RunPhase::Completed, RunPhase::Failed { code: "x".into(), message: "y".into() }, RunPhase::Unknown]
        {
            assert_eq!(next_step(&run(phase, &["v1"]), &[], true), Next::Done);
        }
    }

    #[test]
    fn the_active_user_is_the_one_every_vault_names() {
        let named = |pairs: &[(&str, Option<&str>)]| -> Vec<(String, Option<String>)> {
            pairs.iter().map(|(k, u)| ((*k).into(), u.map(str::to_string))).collect()
        };
        assert_eq!(
            active_user(["svc", "svc-b"], &named(&[("v1", Some("SVC")), ("v2", Some("svc"))])).unwrap(),
            ("svc".into(), "svc-b".into())
        );
        let err = active_user(["svc", "svc-b"], &named(&[("v1", Some("svc")), ("v2", Some("svc-b"))])).unwrap_err();
        assert_eq!(err.code(), "vaults_disagree");
        assert_eq!(
            active_user(["svc", "svc-b"], &named(&[("v1", Some("mallory"))])).unwrap_err().code(),
            "foreign_user"
        );
        assert_eq!(active_user(["svc", "svc-b"], &named(&[("v1", None)])).unwrap_err().code(), "secret_missing");
        assert_eq!(active_user(["svc", "svc-b"], &[]).unwrap_err().code(), "no_targets");
    }

    proptest! {
        /// Whatever the interleaving of crashes, a target that holds a version of this run is never
        /// written again, and a reset happens only while no target holds one.
        #[test]
        fn no_vault_is_written_twice_and_no_reset_follows_a_write(
            n in 1usize..6,
            crashes in proptest::collection::vec(any::<bool>(), 0..40),
        ) {
            let keys: Vec<String> = (0..n).map(|i| format!("v{i}")).collect();
            let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            let mut r = run(RunPhase::Resetting, &key_refs);
            let mut vault: BTreeMap<String, u32> = BTreeMap::new(); // writes per target
            let mut in_memory = false;
            let mut steps = 0;
            let mut crashes = crashes.into_iter();
            loop {
                steps += 1;
                prop_assert!(steps < 200, "no progress");
                if crashes.next().unwrap_or(false) {
                    in_memory = false; // a crash loses the password, and the record's last unsaved step
                }
                let seen: Vec<TargetView> = keys.iter().map(|key| TargetView {
                    key: key.clone(),
                    tagged_version: vault.contains_key(key).then(|| format!("ver-{key}")),
                }).collect();
                match next_step(&r, &seen, in_memory) {
                    Next::Reset => {
                        prop_assert!(vault.is_empty(), "a reset after a vault got the password");
                        r.resets += 1;
                        in_memory = true;
                        r.phase = RunPhase::Writing;
                    }
                    Next::Write { keys: to } | Next::CopyFrom { to, .. } => {
                        // Writes one target, then maybe crashes before recording it.
                        let key = to[0].clone();
                        *vault.entry(key.clone()).or_default() += 1;
                        prop_assert_eq!(vault[&key], 1, "a target written twice");
                        if !crashes.next().unwrap_or(false) {
                            r.versions.insert(key.clone(), format!("ver-{key}"));
                        } else {
                            in_memory = false;
                        }
                    }
                    Next::RollOut { versions } => {
                        prop_assert_eq!(versions.len(), n);
                        break;
                    }
                    Next::Done => prop_assert!(false, "done before rolling out"),
                }
            }
        }
    }
}
