//! The rollout's transition function: `(state, inputs) -> (state, effects)`, pure and deterministic.
//! Time, Deployment views, Job outcomes and analysis rounds come in as data; the reconcile performs
//! the effects (events, metrics, notifications) and writes the state back to the status.
//!
//! Stages: Idle → [BackingUp] → [Migrating] → Previewing → Analysing → [AwaitingPromotion] →
//! Promoting → PostPromotion → ScalingDown → Idle; any failure → Aborted (traffic stays on, or goes
//! back to, the last good color). One transition per step; the reconcile steps again right away.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::stuck::StuckContainer;
use super::transitions::Machine;
use super::view::DeploymentView;
use crate::crd::{
    Color, ColorStatus, HistoryEntry, RollbackRecord, RolloutCommand, RolloutStage, RolloutStatus,
};
use crate::reason::Reason;

/// Entries kept in `status.history` (the CRD's limit).
pub const HISTORY_LIMIT: usize = 20;

/// A release: what one color runs. A change of any part (the version, the image, or the pod
/// configuration: settings, the API server's config file, a referenced Secret) is a new release and
/// goes through a rollout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Release {
    pub version: String,
    pub image: String,
    /// Configuration revision (`ColorStatus::config`).
    pub config: String,
}

impl Release {
    /// Same release; an image or configuration unknown to an older status counts as matching.
    pub(super) fn matches(&self, color: &ColorStatus) -> bool {
        self.version == color.version
            && (color.image.is_empty() || self.image == color.image)
            && (color.config.is_empty() || self.config == color.config)
    }

    /// How messages name the release: the version, and the configuration when that is what changed.
    pub(super) fn describe(&self, serving: Option<&ColorStatus>) -> String {
        match serving {
            Some(s) if s.version == self.version && !self.config.is_empty() => {
                format!("{} (configuration {})", self.version, self.config)
            }
            _ => self.version.clone(),
        }
    }
}

/// The part of the status the machine owns.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct State {
    pub rollout: RolloutStatus,
    /// The color behind the active Service and its release; `None` until a first promotion.
    pub active: Option<ColorStatus>,
    /// The other color and the release it runs or last ran.
    pub preview: Option<ColorStatus>,
    pub history: Vec<HistoryEntry>,
    pub last_rollback: Option<RollbackRecord>,
}

/// The rollout settings of the spec, resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct RolloutSettings {
    pub auto_promote: bool,
    pub paused: bool,
    pub preview_replicas: i32,
    /// Pods of a promoted color (`replicas`, or the autoscaler's minimum).
    pub replicas: i32,
    pub progress_deadline: Duration,
    pub scale_down_delay: Duration,
    pub interval: Duration,
    pub count: i32,
    pub failure_limit: i32,
    pub post_promotion: Duration,
    pub migrations: bool,
    pub backup_before_migration: bool,
    /// How long a container of the stage's pods may wait in trouble before the rollout aborts.
    pub start_failure_grace: Duration,
}

/// Outcome of a Job the rollout waits for.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum JobState {
    /// Not created yet (or not observed yet).
    #[default]
    Missing,
    Running,
    /// Finished; a backup Job reports the id of the backup it took.
    Succeeded {
        backup_id: Option<String>,
    },
    /// Failed, with what it said.
    Failed(String),
}

/// One analysis round against the pods of a color (every ready pod; while previewing, every
/// running one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Round {
    pub passed: bool,
    /// The failures, in words (empty when passed).
    pub error: String,
    /// A pod answered wrongly (a status or body), not merely refused or timed out as a starting
    /// pod does: only such rounds count against a release that is still starting.
    pub answered: bool,
}

/// Everything a step observes besides the state.
#[derive(Clone, Debug)]
pub struct Inputs<'a> {
    pub now: Timestamp,
    /// The release the spec asks for.
    pub desired: Release,
    pub settings: &'a RolloutSettings,
    /// The Deployment of `rollout.targetColor`, as last observed.
    pub target_view: Option<&'a DeploymentView>,
    pub migration: JobState,
    pub backup: JobState,
    /// The round the reconcile ran because [`round_due`] said so.
    pub round: Option<Round>,
    /// Command annotations present on the object, in the order to act on them.
    pub commands: &'a [RolloutCommand],
    /// The release before the current one (`history[1]`), the target of a rollback.
    pub previous: Option<Release>,
    /// Containers in trouble among the pods the stage starts ([`RolloutStage::starts_pods`]): the backup Job's,
    /// the migration Job's, or the target color's pods of the target release.
    pub stuck: &'a [StuckContainer],
}

/// What the reconcile does about a step, besides writing the state.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// A rollout began.
    Started {
        from: Option<String>,
        to: String,
        rollback: bool,
    },
    /// Entered a new stage (a Normal event).
    Stage {
        stage: RolloutStage,
        message: String,
    },
    /// Traffic switched to the new color.
    Switched { color: Color, version: String },
    /// The new release passed post-promotion analysis.
    Succeeded { version: String },
    /// The rollout stopped and traffic stayed on (or returned to) the last good color.
    RolledBack {
        reason: Reason,
        record: RollbackRecord,
    },
    /// A command annotation was acted on (`applied`) or refused, with what happened or why not.
    Command {
        command: RolloutCommand,
        applied: bool,
        message: String,
    },
}

/// The color a rollout puts the new release on: the idle one, or blue on a first deploy.
pub(super) fn idle_color(state: &State) -> Color {
    state
        .active
        .as_ref()
        .map_or(Color::Blue, |a| a.color.other())
}

pub(super) fn elapsed(since: Option<&Time>, now: Timestamp) -> Duration {
    since
        .map(|t| now.duration_since(t.0))
        .and_then(|d| Duration::try_from(d).ok())
        .unwrap_or_default()
}

pub(super) fn seconds(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

/// Whether the reconcile should run an analysis round now, and against which color.
pub fn round_due(state: &State, settings: &RolloutSettings, now: Timestamp) -> Option<Color> {
    let r = &state.rollout;
    if settings.paused || !r.stage.analysed() {
        return None;
    }
    let last = r.checks.as_ref().and_then(|c| c.last_round_at.as_ref());
    let due = last.is_none_or(|_| elapsed(last, now) >= settings.interval);
    due.then_some(r.target_color).flatten()
}

/// How long until the rollout needs another step (watch events on its Deployments and Jobs come
/// in between); `None` when it waits for nothing but a change.
pub fn next_step_in(state: &State, settings: &RolloutSettings, now: Timestamp) -> Option<Duration> {
    let r = &state.rollout;
    if settings.paused {
        return None;
    }
    let stage_age = elapsed(r.stage_started_at.as_ref(), now);
    // A container in trouble: look again when its grace runs out.
    let grace_left = r
        .start_failure
        .as_ref()
        .filter(|_| r.stage.starts_pods())
        .map(|f| {
            settings
                .start_failure_grace
                .saturating_sub(elapsed(Some(&f.since), now))
                .max(Duration::from_millis(100))
        });
    let wait = match r.stage {
        RolloutStage::Idle | RolloutStage::Aborted | RolloutStage::AwaitingPromotion => None,
        RolloutStage::Previewing | RolloutStage::Analysing | RolloutStage::PostPromotion => {
            let last = r.checks.as_ref().and_then(|c| c.last_round_at.as_ref());
            let since = last.map_or(settings.interval, |_| elapsed(last, now));
            let mut wait = settings.interval.saturating_sub(since);
            if r.stage == RolloutStage::PostPromotion {
                wait = wait.min(settings.post_promotion.saturating_sub(stage_age));
            }
            Some(wait.max(Duration::from_millis(100)))
        }
        RolloutStage::ScalingDown => Some(
            settings
                .scale_down_delay
                .saturating_sub(stage_age)
                .max(Duration::from_millis(100)),
        ),
        // Deployments and Jobs report through watches; this is the deadline's safety net.
        _ => Some(Duration::from_secs(2)),
    };
    match (wait, grace_left) {
        (Some(w), Some(g)) => Some(w.min(g)),
        (w, g) => w.or(g),
    }
}

/// One transition.
pub fn step(state: &State, inputs: &Inputs<'_>) -> (State, Vec<Effect>) {
    let mut m = Machine {
        s: state.clone(),
        effects: Vec::new(),
        now: inputs.now,
        settings: inputs.settings,
    };
    // A status written before configuration revisions existed: the serving color runs what the
    // spec says (nothing rolled it since), so adopt the revision instead of rolling out again.
    if let Some(active) = m.s.active.as_mut()
        && active.config.is_empty()
        && inputs.desired.matches(active)
    {
        active.config = inputs.desired.config.clone();
    }
    for &command in inputs.commands {
        m.command(command, inputs);
    }
    if !inputs.settings.paused {
        m.advance(inputs);
    }
    (m.s, m.effects)
}
