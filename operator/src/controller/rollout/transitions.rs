//! The rollout's transitions: how one step moves the [`Machine`] from stage to stage, with the
//! effects each transition has. [`super::machine::step`] drives it.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::machine::{
    Effect, HISTORY_LIMIT, Inputs, JobState, Release, RolloutSettings, Round, State, elapsed,
    idle_color, seconds,
};
use super::stuck::StuckContainer;
use super::view::DeploymentView;
use crate::crd::{
    CheckTally, Color, ColorStatus, FootballPredictionStatus, HistoryEntry, RollbackRecord,
    RolloutCommand, RolloutStage, RolloutStatus, StartFailure,
};
use crate::reason::Reason;

/// The state being stepped, the effects so far, and what every transition reads.
pub(super) struct Machine<'a> {
    pub(super) s: State,
    pub(super) effects: Vec<Effect>,
    pub(super) now: Timestamp,
    pub(super) settings: &'a RolloutSettings,
}

impl Machine<'_> {
    fn target(&self) -> Release {
        Release {
            version: self.s.rollout.target_version.clone(),
            image: self.s.rollout.target_image.clone(),
            config: self.s.rollout.target_config.clone(),
        }
    }

    fn stage_age(&self) -> Duration {
        elapsed(self.s.rollout.stage_started_at.as_ref(), self.now)
    }

    /// Acts on a command when it applies in the current stage; otherwise changes nothing and says
    /// why (the same rule `kubectl fp` checks before it asks).
    pub(super) fn command(&mut self, command: RolloutCommand, inputs: &Inputs<'_>) {
        let view = FootballPredictionStatus {
            rollout: Some(self.s.rollout.clone()),
            history: self.s.history.clone(),
            ..FootballPredictionStatus::default()
        };
        if let Err(why) = command.applies(&inputs.desired.version, Some(&view)) {
            self.effects.push(Effect::Command {
                command,
                applied: false,
                message: why,
            });
            return;
        }
        let target = self.s.rollout.target_version.clone();
        match command {
            RolloutCommand::Promote => {
                self.enter(RolloutStage::Promoting, "promoted on request".into());
            }
            RolloutCommand::Abort => self.abort(
                Reason::Aborted,
                format!(
                    "aborted on request; {target} is not rolled out again until spec.version changes or `kubectl fp retry`"
                ),
            ),
            RolloutCommand::Retry => self.start(inputs.desired.clone(), false),
            RolloutCommand::Rollback => {
                if self.s.rollout.stage == RolloutStage::Idle {
                    let Some(previous) = inputs.previous.clone() else {
                        self.effects.push(Effect::Command {
                            command,
                            applied: false,
                            message: "no previous release to roll back to".into(),
                        });
                        return;
                    };
                    self.start(previous, true);
                } else {
                    // The old color still runs at full size: switch back now.
                    // The rolled-back release entered history when it reached ScalingDown; in
                    // PostPromotion the newest entry is still the release going back to serve
                    // (the same version, when only the configuration changed).
                    if self.s.rollout.stage == RolloutStage::ScalingDown
                        && self.s.history.first().is_some_and(|h| h.version == target)
                    {
                        self.s.history.remove(0);
                    }
                    self.abort(
                        Reason::RolledBack,
                        format!(
                            "rolled back on request; {target} is not rolled out again until spec.version changes or `kubectl fp retry`"
                        ),
                    );
                }
            }
        }
        let message = self.s.rollout.message.clone();
        self.effects.push(Effect::Command {
            command,
            applied: true,
            message,
        });
    }

    pub(super) fn advance(&mut self, inputs: &Inputs<'_>) {
        let desired = &inputs.desired;
        let r = &self.s.rollout;
        let serves_desired = self.s.active.as_ref().is_some_and(|a| desired.matches(a));
        // A new spec during the pre-promotion stages replaces the release under way.
        let superseded = r.stage.before_promotion() && !r.rollback && self.target() != *desired;
        if superseded {
            if serves_desired {
                self.finish_idle("spec returned to the serving release; rollout cancelled");
            } else {
                self.start(desired.clone(), false);
            }
            return;
        }
        if r.stage.starts_pods() && self.judge_start(inputs.stuck) {
            return;
        }
        let r = &self.s.rollout;
        match r.stage {
            RolloutStage::Idle => {
                if !serves_desired {
                    self.start(desired.clone(), false);
                }
            }
            RolloutStage::Aborted => {
                // The rejected release is not retried until the spec names another one.
                if self.target() != *desired {
                    if serves_desired {
                        self.finish_idle("spec returned to the serving release");
                    } else {
                        self.start(desired.clone(), false);
                    }
                }
            }
            RolloutStage::BackingUp => self.backed_up(&inputs.backup),
            RolloutStage::Migrating => self.migrated(&inputs.migration),
            RolloutStage::Previewing => self.preview(inputs),
            RolloutStage::Analysing => {
                if let Some(round) = &inputs.round {
                    self.tally(round);
                    self.judge_pre_promotion();
                }
            }
            RolloutStage::AwaitingPromotion => {}
            RolloutStage::Promoting => {
                let want = self.settings.replicas;
                self.await_pods(inputs.target_view, want, RolloutStage::PostPromotion);
            }
            RolloutStage::PostPromotion => {
                if let Some(round) = &inputs.round {
                    self.tally(round);
                }
                self.judge_post_promotion();
            }
            RolloutStage::ScalingDown => {
                if self.stage_age() >= self.settings.scale_down_delay {
                    self.complete();
                }
            }
        }
    }

    /// BackingUp: the backup Job before the migration decides.
    fn backed_up(&mut self, job: &JobState) {
        match job {
            JobState::Succeeded { backup_id } => {
                self.s.rollout.backup_id = backup_id.clone();
                let id = backup_id.as_deref().unwrap_or("(no id reported)");
                self.enter(RolloutStage::Migrating, format!("backup {id} taken"));
            }
            JobState::Failed(why) => self.abort(
                Reason::BackupFailed,
                format!("the backup before the migration failed: {why}"),
            ),
            JobState::Missing | JobState::Running => {}
        }
    }

    /// Migrating: the migration Job decides.
    fn migrated(&mut self, job: &JobState) {
        let version = self.s.rollout.target_version.clone();
        match job {
            JobState::Succeeded { .. } => self.enter(
                RolloutStage::Previewing,
                format!("migrations of {version} applied"),
            ),
            JobState::Failed(why) => self.abort(
                Reason::MigrationFailed,
                format!("the migration Job of {version} failed: {why}"),
            ),
            JobState::Missing | JobState::Running => {}
        }
    }

    /// Previewing: waits for the preview pods. Starting pods are probed too: one that answers its
    /// checks wrongly (e.g. a readiness that stays 503) fails the rollout now, not at the
    /// progress deadline.
    fn preview(&mut self, inputs: &Inputs<'_>) {
        if let Some(round) = &inputs.round {
            let tally = self
                .s
                .rollout
                .checks
                .get_or_insert_with(CheckTally::default);
            tally.last_round_at = Some(Time(self.now));
            if !round.passed && round.answered {
                tally.failed += 1;
                tally.last_error = round.error.clone();
            }
        }
        if let Some(why) = self.failed_too_often() {
            self.abort(Reason::AnalysisFailed, why);
            return;
        }
        let want = self.settings.preview_replicas;
        self.await_pods(inputs.target_view, want, RolloutStage::Analysing);
    }

    fn start(&mut self, release: Release, rollback: bool) {
        let from = self.s.active.as_ref().map(|a| a.version.clone());
        let color = idle_color(&self.s);
        let described = release.describe(self.s.active.as_ref());
        // The same version has the same schema: a configuration change needs no migration.
        let same_schema = from.as_deref() == Some(release.version.as_str());
        let first = if same_schema {
            RolloutStage::Previewing
        } else if self.settings.backup_before_migration && self.settings.migrations {
            RolloutStage::BackingUp
        } else if self.settings.migrations {
            RolloutStage::Migrating
        } else {
            RolloutStage::Previewing
        };
        self.s.rollout = RolloutStatus {
            stage: first,
            target_version: release.version.clone(),
            target_image: release.image,
            target_config: release.config,
            target_color: Some(color),
            from_version: from.clone().unwrap_or_default(),
            started_at: Some(Time(self.now)),
            stage_started_at: Some(Time(self.now)),
            rollback,
            message: format!(
                "rolling out {described} on {}{}",
                color.as_str(),
                from.as_ref()
                    .map(|f| format!(" (serving {f})"))
                    .unwrap_or_default()
            ),
            ..RolloutStatus::default()
        };
        self.effects.push(Effect::Started {
            from,
            to: release.version,
            rollback,
        });
    }

    fn enter(&mut self, stage: RolloutStage, message: String) {
        let r = &mut self.s.rollout;
        r.stage = stage;
        r.stage_started_at = Some(Time(self.now));
        r.message = message.clone();
        r.start_failure = None;
        if stage.analysed() {
            r.checks = Some(CheckTally::default());
        }
        self.effects.push(Effect::Stage { stage, message });
    }

    /// Waits until the target color runs `want` available pods of the target release, within the
    /// progress deadline.
    fn await_pods(&mut self, view: Option<&DeploymentView>, want: i32, next: RolloutStage) {
        let target = self.target();
        let up_to_date = view.filter(|v| {
            v.current
                && v.image == target.image
                && (target.config.is_empty() || v.config == target.config)
        });
        let available = up_to_date.map_or(0, |v| v.available.min(v.updated));
        if up_to_date.is_some() && available >= want {
            if next == RolloutStage::PostPromotion {
                self.switch_to_target();
            }
            let message = match next {
                RolloutStage::PostPromotion => format!(
                    "{} serves on {}; analysing for {}",
                    target.version,
                    self.color_name(),
                    seconds(self.settings.post_promotion)
                ),
                _ => format!(
                    "{available} preview pod(s) of {} available; analysing",
                    target.version
                ),
            };
            self.enter(next, message);
        } else if self.stage_age() > self.settings.progress_deadline {
            let name = view.map_or_else(|| "the Deployment".to_owned(), |v| v.name.clone());
            self.abort(
                Reason::ProgressDeadlineExceeded,
                format!(
                    "{name}: {available}/{want} pods of {} available after {}",
                    target.version,
                    seconds(self.settings.progress_deadline)
                ),
            );
        }
    }

    /// Follows the first container in trouble from one step to the next; aborts once it has been
    /// in the same trouble for the grace. Returns whether it aborted.
    fn judge_start(&mut self, stuck: &[StuckContainer]) -> bool {
        let seen = self.s.rollout.start_failure.take();
        let still = seen.as_ref().and_then(|f| {
            stuck
                .iter()
                .find(|c| c.same_as(&f.pod, &f.container, &f.waiting_reason))
                .map(|c| (c, f.since.clone()))
        });
        let Some((container, since)) = still.or_else(|| stuck.first().map(|c| (c, Time(self.now))))
        else {
            return false;
        };
        let waited = elapsed(Some(&since), self.now);
        self.s.rollout.start_failure = Some(StartFailure {
            pod: container.pod.clone(),
            container: container.container.clone(),
            image: container.image.clone(),
            waiting_reason: container.waiting_reason.clone(),
            message: container.message.clone(),
            since,
        });
        if waited < self.settings.start_failure_grace {
            return false;
        }
        let stage = self.s.rollout.stage.as_str();
        let serving = match &self.s.active {
            Some(a) => format!("{} keeps serving on {}", a.version, a.color.as_str()),
            None => "nothing served before".to_owned(),
        };
        self.abort(
            container.trouble.rollout_reason(),
            format!(
                "{stage}: {} for {}; {serving}",
                container.describe(),
                seconds(waited)
            ),
        );
        true
    }

    fn color_name(&self) -> &'static str {
        self.s.rollout.target_color.map_or("", Color::as_str)
    }

    fn tally(&mut self, round: &Round) {
        let tally = self
            .s
            .rollout
            .checks
            .get_or_insert_with(CheckTally::default);
        tally.last_round_at = Some(Time(self.now));
        if round.passed {
            tally.passed += 1;
        } else {
            tally.failed += 1;
            tally.last_error = round.error.clone();
        }
    }

    fn tally_words(&self) -> String {
        let t = self.s.rollout.checks.clone().unwrap_or_default();
        format!(
            "{} of {} rounds failed; failureLimit {}",
            t.failed,
            t.passed + t.failed,
            self.settings.failure_limit
        )
    }

    fn failed_too_often(&self) -> Option<String> {
        let t = self.s.rollout.checks.as_ref()?;
        (t.failed > self.settings.failure_limit)
            .then(|| format!("{} ({})", t.last_error, self.tally_words()))
    }

    fn judge_pre_promotion(&mut self) {
        if let Some(why) = self.failed_too_often() {
            self.abort(Reason::AnalysisFailed, why);
            return;
        }
        let t = self.s.rollout.checks.clone().unwrap_or_default();
        if t.passed + t.failed < self.settings.count {
            return;
        }
        let summary = format!(
            "analysis passed ({} of {} rounds)",
            t.passed,
            t.passed + t.failed
        );
        // A requested rollback is itself the decision to promote.
        if self.settings.auto_promote || self.s.rollout.rollback {
            self.enter(RolloutStage::Promoting, format!("{summary}; promoting"));
        } else {
            self.enter(
                RolloutStage::AwaitingPromotion,
                format!("{summary}; waiting for `kubectl fp promote`"),
            );
        }
    }

    fn judge_post_promotion(&mut self) {
        if let Some(why) = self.failed_too_often() {
            self.abort(Reason::AnalysisFailed, format!("after promotion: {why}"));
            return;
        }
        if self.stage_age() < self.settings.post_promotion {
            return;
        }
        let version = self.s.rollout.target_version.clone();
        self.s.history.insert(
            0,
            HistoryEntry {
                version: version.clone(),
                promoted_at: Time(self.now),
                backup_id: self.s.rollout.backup_id.clone(),
            },
        );
        self.s.history.truncate(HISTORY_LIMIT);
        self.effects.push(Effect::Succeeded {
            version: version.clone(),
        });
        if self.s.preview.is_some() {
            self.enter(
                RolloutStage::ScalingDown,
                format!(
                    "{version} passed post-promotion analysis; the old color scales down in {}",
                    seconds(self.settings.scale_down_delay)
                ),
            );
        } else {
            self.complete();
        }
    }

    /// The active Service moves to the target color; the old color stays at full size.
    fn switch_to_target(&mut self) {
        let Some(color) = self.s.rollout.target_color else {
            return;
        };
        let target = self.target();
        let new_active = ColorStatus {
            color,
            version: target.version.clone(),
            image: target.image,
            config: target.config,
            ready_replicas: self.settings.replicas,
        };
        self.s.preview = self.s.active.replace(new_active);
        self.effects.push(Effect::Switched {
            color,
            version: target.version,
        });
    }

    /// The active Service returns to the old color (after a switch that turned out bad).
    fn switch_back(&mut self) {
        let Some(old) = self.s.preview.clone() else {
            // A first deploy has no old color: nothing may serve an unverified release.
            self.s.preview = self.s.active.take();
            return;
        };
        self.s.preview = self.s.active.replace(old);
    }

    fn abort(&mut self, reason: Reason, message: String) {
        if self.s.rollout.stage.switched() {
            self.switch_back();
        }
        let to = self
            .s
            .active
            .as_ref()
            .map(|a| a.version.clone())
            .unwrap_or_default();
        let record = RollbackRecord {
            at: Time(self.now),
            from_version: self.s.rollout.target_version.clone(),
            to_version: to,
            reason: reason.to_string(),
            message: message.clone(),
        };
        self.s.last_rollback = Some(record.clone());
        let r = &mut self.s.rollout;
        r.stage = RolloutStage::Aborted;
        r.stage_started_at = Some(Time(self.now));
        r.reason = reason.to_string();
        r.message = message;
        self.effects.push(Effect::RolledBack { reason, record });
    }

    /// A rollout reached its end: Idle, or for a requested rollback, Aborted with the rejected
    /// release as the one not to retry.
    fn complete(&mut self) {
        let r = self.s.rollout.clone();
        if r.rollback {
            let rejected = self.s.preview.clone();
            self.s.rollout = RolloutStatus {
                stage: RolloutStage::Aborted,
                target_version: rejected
                    .as_ref()
                    .map(|p| p.version.clone())
                    .unwrap_or_default(),
                target_image: rejected
                    .as_ref()
                    .map(|p| p.image.clone())
                    .unwrap_or_default(),
                target_config: rejected.map(|p| p.config).unwrap_or_default(),
                target_color: r.target_color.map(Color::other),
                stage_started_at: Some(Time(self.now)),
                reason: Reason::RolledBack.to_string(),
                message: format!(
                    "rolled back to {} on request; {} is not rolled out again until spec.version changes or `kubectl fp retry`",
                    r.target_version, r.from_version
                ),
                ..RolloutStatus::default()
            };
        } else {
            self.finish_idle(&format!("{} rolled out", r.target_version));
        }
    }

    fn finish_idle(&mut self, message: &str) {
        self.s.rollout = RolloutStatus {
            stage: RolloutStage::Idle,
            stage_started_at: Some(Time(self.now)),
            message: message.to_owned(),
            ..RolloutStatus::default()
        };
        self.effects.push(Effect::Stage {
            stage: RolloutStage::Idle,
            message: message.to_owned(),
        });
    }
}
