//! Planning a rollout: an inventory and a rollout file in, the frozen membership out — which stage
//! each cluster belongs to, which overrides and maintenance windows apply to it — or an error that
//! names the stage, override or cluster at fault. Pure; the engine starts from a [`Plan`].
//!
//! **Stage assignment rule.**
//! 1. *Selector stages* (a `selector`, no `count`/`percent`) claim every cluster they match. They
//!    must not overlap: a cluster two of them match is an error naming both (first-match-wins
//!    would hide a typo that moves a production cluster into the canary).
//! 2. The other stages, in order, take from the clusters no selector stage claimed and no earlier
//!    stage took, in cluster-id order: `count: n` the first n, `percent: p` the first ⌈p % of those
//!    left⌉ (restricted to the stage's own selector, if any); a stage with neither takes all left.
//! 3. A cluster no stage took is refused, by name. A stage may end up empty (a small fleet); it
//!    still passes through its gates and soak, so an approval is never skipped silently.

use super::window::{CronError, Window};
use crate::selector::{Selector, SelectorError};
use proto::command::ValidationError;
use proto::rollout::{GmsaSetup, Override, RolloutFile, Strategy};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// One cluster of the inventory, as the planner needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub cluster: String,
    pub labels: BTreeMap<String, String>,
    /// The cluster's Azure subscription: its ARM write budget.
    pub subscription: String,
}

/// The frozen membership of a rollout, with the file it was planned from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub name: String,
    /// The setup before overrides; a cluster's own is [`Plan::setup_of`].
    pub setup: GmsaSetup,
    pub overrides: Vec<Override>,
    pub strategy: Strategy,
    /// The clusters of each stage (index as in `strategy.stages`), in cluster-id order.
    pub stages: Vec<Vec<String>>,
    pub clusters: BTreeMap<String, PlannedCluster>,
    /// Set for a credential rotation's rollout: its only step is `rotate-credential`, naming the
    /// version the rotation wrote to each cluster's secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<RotationPlan>,
}

/// What a rotation's rollout sends: the rotation's id and its new version of every secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationPlan {
    pub run_id: String,
    /// By [`crate::rotation::run::target_key`].
    pub versions: BTreeMap<String, String>,
}

/// One member of a planned rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedCluster {
    pub subscription: String,
    pub stage: usize,
    /// Indices into `Plan::overrides` that match the cluster, in order of application.
    pub overrides: Vec<usize>,
    /// Indices into `strategy.maintenance_windows` that match the cluster.
    pub windows: Vec<usize>,
}

/// Why a rollout cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A field of the file breaks a rule.
    #[error("{0}")]
    Invalid(#[from] ValidationError),
    /// A cluster's setup after overrides breaks a rule; the field names where the value came from.
    #[error("{error} (cluster {cluster})")]
    Setup { cluster: String, error: ValidationError },
    /// Two selector stages pick the same cluster.
    #[error(
        "cluster {cluster} is picked by strategy.stages[{first}] ({first_name}) and strategy.stages[{second}] ({second_name}); selector stages must not overlap"
    )]
    Overlap { cluster: String, first: usize, first_name: String, second: usize, second_name: String },
    /// Clusters of the inventory that no stage picks.
    #[error("no stage picks {} cluster(s): {}", clusters.len(), clusters.join(", "))]
    Unassigned { clusters: Vec<String> },
    /// The inventory names a cluster twice.
    #[error("the inventory lists cluster {cluster} twice")]
    DuplicateCluster { cluster: String },
}

fn selector_at(field: &str, text: &str) -> Result<Selector, ValidationError> {
    Selector::parse(text).map_err(|err: SelectorError| ValidationError::new(field, err.to_string()))
}

fn window_at(field: &str, cron: &str, duration_secs: u64) -> Result<Window, ValidationError> {
    Window::parse(cron, duration_secs).map_err(|err: CronError| ValidationError::new(field, err.to_string()))
}

/// Everything about a file that needs no inventory: `RolloutFile::validate` plus the syntax of
/// every selector and cron expression.
pub fn validate(file: &RolloutFile) -> Result<(), ValidationError> {
    file.validate()?;
    Selector::parse(&file.selector)
        .map_err(|err| ValidationError::new("selector", format!("not a label selector: {err}")))?;
    parsed_selectors(file).map(|_| ())
}

struct Parsed {
    overrides: Vec<Selector>,
    stages: Vec<Option<Selector>>,
    windows: Vec<Selector>,
}

fn parsed_selectors(file: &RolloutFile) -> Result<Parsed, ValidationError> {
    let overrides = (file.overrides.iter().enumerate())
        .map(|(index, entry)| selector_at(&format!("overrides[{index}].selector"), &entry.selector))
        .collect::<Result<_, _>>()?;
    let stages = (file.strategy.stages.iter().enumerate())
        .map(|(index, stage)| {
            (stage.selector.as_deref())
                .map(|text| selector_at(&format!("strategy.stages[{index}].selector"), text))
                .transpose()
        })
        .collect::<Result<_, _>>()?;
    let mut windows = Vec::new();
    for (index, window) in file.strategy.maintenance_windows.iter().enumerate() {
        let at = format!("strategy.maintenance_windows[{index}]");
        window_at(&format!("{at}.cron"), &window.cron, window.duration_secs)?;
        windows.push(selector_at(&format!("{at}.selector"), &window.selector)?);
    }
    Ok(Parsed { overrides, stages, windows })
}

/// Plans `file` over `inventory`.
///
/// Checks, in order: the file's strategy and base setup; selector and cron syntax; stage
/// membership (overlaps, unassigned clusters); each cluster's setup after its overrides (an error
/// names the override's field and the cluster); then the values of overrides that matched no
/// cluster.
pub fn plan(file: &RolloutFile, inventory: &[Member]) -> Result<Plan, PlanError> {
    file.schema.check_supported().map_err(|err| ValidationError::new("schema", err.to_string()))?;
    if file.name.trim().is_empty() {
        return Err(ValidationError::new("name", "must not be empty").into());
    }
    file.strategy.validate()?;
    file.setup.validate_with(&|field| format!("setup.{field}"))?;
    let parsed = parsed_selectors(file)?;
    let covers = Selector::parse(&file.selector)
        .map_err(|err| ValidationError::new("selector", format!("not a label selector: {err}")))?;

    let mut members: Vec<&Member> = inventory.iter().filter(|member| covers.matches(&member.labels)).collect();
    members.sort_by(|a, b| a.cluster.cmp(&b.cluster));
    if let Some(pair) = members.windows(2).find(|pair| pair[0].cluster == pair[1].cluster) {
        return Err(PlanError::DuplicateCluster { cluster: pair[0].cluster.clone() });
    }

    let stages = &file.strategy.stages;
    let is_selector_stage = |index: usize| stages[index].count.is_none() && stages[index].percent.is_none();
    let mut stage_of: BTreeMap<&str, usize> = BTreeMap::new();
    for member in &members {
        for (index, selector) in parsed.stages.iter().enumerate() {
            let Some(selector) = selector else { continue };
            if !is_selector_stage(index) || !selector.matches(&member.labels) {
                continue;
            }
            if let Some(&first) = stage_of.get(member.cluster.as_str()) {
                return Err(PlanError::Overlap {
                    cluster: member.cluster.clone(),
                    first,
                    first_name: stages[first].name.clone(),
                    second: index,
                    second_name: stages[index].name.clone(),
                });
            }
            stage_of.insert(&member.cluster, index);
        }
    }
    for (index, stage) in stages.iter().enumerate() {
        if stage.selector.is_some() && is_selector_stage(index) {
            continue;
        }
        let candidates: Vec<&str> = (members.iter())
            .filter(|member| !stage_of.contains_key(member.cluster.as_str()))
            .filter(|member| parsed.stages[index].as_ref().is_none_or(|selector| selector.matches(&member.labels)))
            .map(|member| member.cluster.as_str())
            .collect();
        let take = match (stage.count, stage.percent) {
            (Some(count), _) => count as usize,
            (None, Some(percent)) => (candidates.len() * percent as usize).div_ceil(100),
            (None, None) => candidates.len(),
        };
        for cluster in candidates.into_iter().take(take) {
            stage_of.insert(cluster, index);
        }
    }
    let unassigned: Vec<String> = (members.iter())
        .filter(|member| !stage_of.contains_key(member.cluster.as_str()))
        .map(|member| member.cluster.clone())
        .collect();
    if !unassigned.is_empty() {
        return Err(PlanError::Unassigned { clusters: unassigned });
    }

    let mut plan = Plan {
        name: file.name.clone(),
        setup: file.setup.clone(),
        overrides: file.overrides.clone(),
        strategy: file.strategy.clone(),
        stages: vec![Vec::new(); stages.len()],
        clusters: BTreeMap::new(),
        rotation: None,
    };
    let mut used_overrides = BTreeSet::new();
    for member in &members {
        let stage = stage_of[member.cluster.as_str()];
        let overrides: Vec<usize> =
            (0..parsed.overrides.len()).filter(|&index| parsed.overrides[index].matches(&member.labels)).collect();
        let windows: Vec<usize> =
            (0..parsed.windows.len()).filter(|&index| parsed.windows[index].matches(&member.labels)).collect();
        let planned = PlannedCluster { subscription: member.subscription.clone(), stage, overrides, windows };
        let (setup, origins) = effective_setup(&plan.setup, &plan.overrides, &planned.overrides);
        setup
            .validate_with(&|field| origin_of(&origins, field))
            .map_err(|error| PlanError::Setup { cluster: member.cluster.clone(), error })?;
        used_overrides.extend(planned.overrides.iter().copied());
        plan.stages[stage].push(member.cluster.clone());
        plan.clusters.insert(member.cluster.clone(), planned);
    }
    for (index, entry) in file.overrides.iter().enumerate() {
        if !used_overrides.contains(&index) {
            entry.set.validate(&format!("overrides[{index}].set"))?;
        }
    }
    Ok(plan)
}

/// The fields an override can set, and where each value of a cluster's setup came from.
type Origins = BTreeMap<&'static str, usize>;

fn effective_setup(base: &GmsaSetup, overrides: &[Override], applied: &[usize]) -> (GmsaSetup, Origins) {
    let mut setup = base.clone();
    let mut origins = Origins::new();
    for &index in applied {
        let set = &overrides[index].set;
        setup = setup.with(set);
        for (field, present) in [
            ("dns_server", set.dns_server.is_some()),
            ("root_domain", set.root_domain.is_some()),
            ("vault", set.vault.is_some()),
            ("secret_name", set.secret_name.is_some()),
            ("identity", set.identity.is_some()),
        ] {
            if present {
                origins.insert(field, index);
            }
        }
    }
    (setup, origins)
}

fn origin_of(origins: &Origins, field: &str) -> String {
    let top = field.split('.').next().unwrap_or(field);
    match origins.get(top) {
        Some(index) => format!("overrides[{index}].set.{field}"),
        None => format!("setup.{field}"),
    }
}

impl Plan {
    /// The setup of one member after its overrides (`None` for a cluster not in the plan).
    pub fn setup_of(&self, cluster: &str) -> Option<GmsaSetup> {
        let planned = self.clusters.get(cluster)?;
        Some(effective_setup(&self.setup, &self.overrides, &planned.overrides).0)
    }

    /// The maintenance windows of one member, parsed (the plan's crons were checked when planning).
    pub fn windows_of(&self, cluster: &str) -> Vec<Window> {
        let Some(planned) = self.clusters.get(cluster) else {
            return Vec::new();
        };
        (planned.windows.iter())
            .filter_map(|&index| self.strategy.maintenance_windows.get(index))
            .filter_map(|window| Window::parse(&window.cron, window.duration_secs).ok())
            .collect()
    }

    /// The plan of a dry run (`fleetctl rollout plan`): the same clusters and per-cluster inputs,
    /// in one stage with every cluster at once, no gates, no soak and no failure budget (a dry
    /// run writes nothing, so nothing needs guarding), and only the steps that change things —
    /// `validate-credspec` and the workload need what a dry run does not write.
    pub fn for_dry_run(&self) -> Plan {
        let mut plan = self.clone();
        let deadline = self.strategy.stages.iter().map(|stage| stage.cluster_deadline_secs).max().unwrap_or(3600);
        plan.strategy.stages = vec![proto::rollout::Stage {
            name: "dry-run".into(),
            selector: None,
            count: None,
            percent: None,
            max_concurrency: proto::rollout::Amount::Percent(100),
            failure_budget: proto::rollout::Amount::Percent(100),
            soak_secs: 0,
            approval_before: false,
            approval_after: false,
            cluster_deadline_secs: deadline,
        }];
        plan.strategy.maintenance_windows.clear();
        plan.stages = vec![self.clusters.keys().cloned().collect()];
        for planned in plan.clusters.values_mut() {
            planned.stage = 0;
            planned.windows.clear();
        }
        plan.setup.validate = false;
        plan.setup.run_workload = false;
        plan
    }

    /// This plan restricted to `keep` (stages, gates and inputs unchanged), for a retry.
    pub fn restricted_to(&self, keep: &BTreeSet<String>) -> Plan {
        let mut plan = self.clone();
        plan.clusters.retain(|cluster, _| keep.contains(cluster));
        for members in &mut plan.stages {
            members.retain(|cluster| keep.contains(cluster));
        }
        plan
    }
}
