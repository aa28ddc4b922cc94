//! The rollout state machine, driven step by step through every path of the issue: a healthy
//! rollout, failures in each stage, manual promotion, spec changes and the first deploy.

use super::machine::*;
use super::plan::plan_colors;
use super::stuck::{StuckContainer, Trouble};
use super::view::DeploymentView;
use crate::crd::{Color, ColorStatus, HistoryEntry, RolloutCommand, RolloutStage};
use crate::reason::Reason;
use pretty_assertions::assert_eq;
use std::time::Duration;

fn settings() -> RolloutSettings {
    RolloutSettings {
        auto_promote: true,
        paused: false,
        preview_replicas: 1,
        replicas: 3,
        progress_deadline: Duration::from_secs(300),
        scale_down_delay: Duration::from_secs(30),
        interval: Duration::from_secs(2),
        count: 5,
        failure_limit: 2,
        post_promotion: Duration::from_secs(60),
        migrations: true,
        backup_before_migration: false,
        start_failure_grace: Duration::from_secs(30),
    }
}

fn release(v: &str) -> Release {
    Release {
        version: v.into(),
        image: format!("fp:{v}"),
        config: String::new(),
    }
}

fn at(seconds: i64) -> k8s_openapi::jiff::Timestamp {
    k8s_openapi::jiff::Timestamp::from_second(1_800_000_000 + seconds).unwrap()
}

fn serving(color: Color, v: &str) -> ColorStatus {
    ColorStatus {
        color,
        version: v.into(),
        image: format!("fp:{v}"),
        config: String::new(),
        ready_replicas: 3,
    }
}

/// A color serving `v` with nothing under way.
fn steady(color: Color, v: &str) -> State {
    State {
        active: Some(serving(color, v)),
        ..State::default()
    }
}

fn view(name: &str, image: &str, available: i32) -> DeploymentView {
    DeploymentView {
        name: name.into(),
        desired: available,
        ready: available,
        updated: available,
        available,
        current: true,
        deadline_exceeded: false,
        image: image.into(),
        config: String::new(),
    }
}

struct Drive {
    state: State,
    settings: RolloutSettings,
    desired: Release,
    t: i64,
    effects: Vec<Effect>,
    commands: Vec<RolloutCommand>,
    previous: Option<Release>,
    stuck: Vec<StuckContainer>,
}

impl Drive {
    fn new(state: State, desired: &str) -> Self {
        Self {
            state,
            settings: settings(),
            desired: release(desired),
            t: 0,
            effects: Vec::new(),
            commands: Vec::new(),
            previous: None,
            stuck: Vec::new(),
        }
    }

    fn step_with(
        &mut self,
        view: Option<&DeploymentView>,
        migration: JobState,
        round: Option<Round>,
    ) -> RolloutStage {
        let inputs = Inputs {
            now: at(self.t),
            desired: self.desired.clone(),
            settings: &self.settings,
            target_view: view,
            migration,
            backup: JobState::Missing,
            round,
            commands: &self.commands,
            previous: self.previous.clone(),
            stuck: &self.stuck,
        };
        let (next, effects) = step(&self.state, &inputs);
        self.state = next;
        self.effects.extend(effects);
        self.state.rollout.stage
    }

    fn step(&mut self) -> RolloutStage {
        self.step_with(None, JobState::Missing, None)
    }

    fn target_image(&self) -> String {
        self.state.rollout.target_image.clone()
    }

    /// Steps through migration and preview to the start of analysis.
    fn drive_to_analysis(&mut self) {
        assert_eq!(self.step(), RolloutStage::Migrating);
        self.t += 5;
        assert_eq!(
            self.step_with(None, JobState::Running, None),
            RolloutStage::Migrating
        );
        let done = JobState::Succeeded { backup_id: None };
        assert_eq!(self.step_with(None, done, None), RolloutStage::Previewing);
        self.t += 5;
        let v = view("demo-green", &self.target_image(), 1);
        assert_eq!(
            self.step_with(Some(&v), JobState::Missing, None),
            RolloutStage::Analysing
        );
    }

    fn round(&mut self, passed: bool) -> RolloutStage {
        self.t += 2;
        let round = Round {
            passed,
            error: if passed {
                String::new()
            } else {
                "check ready: GET /health/ready on 127.0.3.4:8080 returned 503 (expected 200)"
                    .into()
            },
            answered: !passed,
        };
        self.step_with(None, JobState::Missing, Some(round))
    }
}

#[test]
fn a_healthy_rollout_goes_through_every_stage_and_switches_once() {
    let mut d = Drive::new(steady(Color::Blue, "1.0.0"), "2.0.0");
    d.drive_to_analysis();
    assert_eq!(d.state.rollout.target_color, Some(Color::Green));
    assert_eq!(d.state.rollout.from_version, "1.0.0");
    for _ in 0..4 {
        assert_eq!(d.round(true), RolloutStage::Analysing);
    }
    assert_eq!(d.round(true), RolloutStage::Promoting);
    assert_eq!(
        d.state.active.as_ref().unwrap().color,
        Color::Blue,
        "not switched yet"
    );
    let scaled = view("demo-green", &d.target_image(), 3);
    let partly = view("demo-green", &d.target_image(), 2);
    assert_eq!(
        d.step_with(Some(&partly), JobState::Missing, None),
        RolloutStage::Promoting
    );
    assert_eq!(
        d.step_with(Some(&scaled), JobState::Missing, None),
        RolloutStage::PostPromotion
    );
    assert_eq!(d.state.active.as_ref().unwrap().color, Color::Green);
    assert_eq!(d.state.active.as_ref().unwrap().version, "2.0.0");
    assert_eq!(d.state.preview.as_ref().unwrap().version, "1.0.0");
    let promoted = d.t;
    while d.t + 2 < promoted + 60 {
        assert_eq!(d.round(true), RolloutStage::PostPromotion);
    }
    assert_eq!(d.round(true), RolloutStage::ScalingDown);
    assert_eq!(d.state.history[0].version, "2.0.0");
    d.t += 29;
    assert_eq!(d.step(), RolloutStage::ScalingDown);
    d.t += 1;
    assert_eq!(d.step(), RolloutStage::Idle);
    assert_eq!(d.step(), RolloutStage::Idle, "nothing left to do");
    let switches = d
        .effects
        .iter()
        .filter(|e| matches!(e, Effect::Switched { .. }))
        .count();
    assert_eq!(switches, 1);
    assert!(d.effects.contains(&Effect::Succeeded {
        version: "2.0.0".into()
    }));
    assert!(d.state.last_rollback.is_none());
}

#[test]
fn failed_pre_promotion_analysis_aborts_and_names_the_check() {
    let mut d = Drive::new(steady(Color::Blue, "1.0.0"), "2.0.0-broken");
    d.drive_to_analysis();
    assert_eq!(d.round(false), RolloutStage::Analysing);
    assert_eq!(d.round(true), RolloutStage::Analysing);
    assert_eq!(d.round(false), RolloutStage::Analysing);
    assert_eq!(d.round(false), RolloutStage::Aborted);
    let r = &d.state.rollout;
    assert_eq!(r.reason, Reason::AnalysisFailed.as_str());
    assert_eq!(
        r.message,
        "check ready: GET /health/ready on 127.0.3.4:8080 returned 503 (expected 200) (3 of 4 rounds failed; failureLimit 2)"
    );
    assert_eq!(
        d.state.active,
        Some(serving(Color::Blue, "1.0.0")),
        "traffic never moved"
    );
    let record = d.state.last_rollback.clone().unwrap();
    assert_eq!(
        (record.from_version.as_str(), record.to_version.as_str()),
        ("2.0.0-broken", "1.0.0")
    );
    // The rejected release is not retried while the spec still names it.
    d.t += 600;
    assert_eq!(d.step(), RolloutStage::Aborted);
    // A new version starts a new rollout.
    d.desired = release("2.0.1");
    assert_eq!(d.step(), RolloutStage::Migrating);
    assert_eq!(d.state.rollout.target_version, "2.0.1");
}

#[test]
fn a_release_failing_after_promotion_switches_straight_back() {
    let mut d = Drive::new(steady(Color::Green, "1.0.0"), "2.0.0");
    d.settings.migrations = false;
    assert_eq!(d.step(), RolloutStage::Previewing);
    let v = view("demo-blue", &d.target_image(), 1);
    d.step_with(Some(&v), JobState::Missing, None);
    for _ in 0..5 {
        d.round(true);
    }
    let v = view("demo-blue", &d.target_image(), 3);
    assert_eq!(
        d.step_with(Some(&v), JobState::Missing, None),
        RolloutStage::PostPromotion
    );
    assert_eq!(d.state.active.as_ref().unwrap().color, Color::Blue);
    d.round(true);
    d.round(false);
    d.round(false);
    assert_eq!(d.round(false), RolloutStage::Aborted);
    assert_eq!(d.state.active, Some(serving(Color::Green, "1.0.0")));
    assert_eq!(d.state.preview.as_ref().unwrap().version, "2.0.0");
    assert!(
        d.state
            .rollout
            .message
            .starts_with("after promotion: check ready")
    );
    assert!(d.state.history.is_empty(), "never recorded as good");
    let plan = plan_colors(&d.state, &d.settings, &d.desired, false, false);
    assert_eq!(plan.active, Color::Green);
    assert!(plan.serving);
    assert_eq!(
        plan.blue.replicas,
        Some(0),
        "the failed color is scaled down"
    );
    assert_eq!(plan.blue.version, "2.0.0");
    assert_eq!(plan.green.replicas, Some(3));
}

#[test]
fn a_failed_migration_aborts_before_any_pod_of_the_release_starts() {
    let mut d = Drive::new(steady(Color::Blue, "1.0.0"), "2.0.0");
    assert_eq!(d.step(), RolloutStage::Migrating);
    let plan = plan_colors(&d.state, &d.settings, &d.desired, false, false);
    assert_eq!(plan.migration.as_ref().unwrap().version, "2.0.0");
    assert_eq!(plan.green.replicas, Some(0));
    let failed = JobState::Failed("relation \"odds\" already exists (BackoffLimitExceeded)".into());
    assert_eq!(d.step_with(None, failed, None), RolloutStage::Aborted);
    assert_eq!(d.state.rollout.reason, Reason::MigrationFailed.as_str());
    assert!(
        d.state
            .rollout
            .message
            .contains("relation \"odds\" already exists")
    );
    let plan = plan_colors(&d.state, &d.settings, &d.desired, false, false);
    assert_eq!(plan.blue.version, "1.0.0");
    assert_eq!(plan.blue.replicas, Some(3));
    assert!(
        plan.migration.is_some(),
        "the failed Job stays for its logs"
    );
}

#[test]
fn a_preview_that_never_becomes_available_hits_the_deadline() {
    let mut d = Drive::new(steady(Color::Blue, "1.0.0"), "2.0.0");
    d.settings.migrations = false;
    d.settings.progress_deadline = Duration::from_secs(60);
    assert_eq!(d.step(), RolloutStage::Previewing);
    let stuck = DeploymentView {
        available: 0,
        ready: 0,
        ..view("demo-green", &d.target_image(), 1)
    };
    d.t = 60;
    assert_eq!(
        d.step_with(Some(&stuck), JobState::Missing, None),
        RolloutStage::Previewing
    );
    d.t = 61;
    assert_eq!(
        d.step_with(Some(&stuck), JobState::Missing, None),
        RolloutStage::Aborted
    );
    assert_eq!(
        d.state.rollout.reason,
        Reason::ProgressDeadlineExceeded.as_str()
    );
    assert_eq!(
        d.state.rollout.message,
        "demo-green: 0/1 pods of 2.0.0 available after 1m"
    );
}

#[test]
fn pods_of_the_previous_template_do_not_count_as_the_preview() {
    let mut d = Drive::new(steady(Color::Blue, "1.0.0"), "2.0.0");
    d.settings.migrations = false;
    d.step();
    let old = view("demo-green", "fp:0.9.0", 1);
    assert_eq!(
        d.step_with(Some(&old), JobState::Missing, None),
        RolloutStage::Previewing
    );
    let not_seen = DeploymentView {
        current: false,
        ..view("demo-green", &d.target_image(), 1)
    };
    assert_eq!(
        d.step_with(Some(&not_seen), JobState::Missing, None),
        RolloutStage::Previewing
    );
}

#[test]
fn without_auto_promote_the_rollout_waits_after_analysis() {
    let mut d = Drive::new(steady(Color::Blue, "1.0.0"), "2.0.0");
    d.settings.auto_promote = false;
    d.drive_to_analysis();
    for _ in 0..5 {
        d.round(true);
    }
    assert_eq!(d.state.rollout.stage, RolloutStage::AwaitingPromotion);
    d.t += 3600;
    assert_eq!(
        d.step(),
        RolloutStage::AwaitingPromotion,
        "waits without a deadline"
    );
    let plan = plan_colors(&d.state, &d.settings, &d.desired, false, false);
    assert_eq!(plan.green.replicas, Some(1), "the preview keeps running");
}

#[test]
fn paused_holds_every_stage() {
    let mut d = Drive::new(steady(Color::Blue, "1.0.0"), "2.0.0");
    d.settings.paused = true;
    assert_eq!(d.step(), RolloutStage::Idle);
    d.settings.paused = false;
    d.drive_to_analysis();
    d.settings.paused = true;
    assert_eq!(round_due(&d.state, &d.settings, at(d.t + 10)), None);
    assert_eq!(d.round(false), RolloutStage::Analysing);
    assert_eq!(d.state.rollout.checks.clone().unwrap().failed, 0);
}

#[test]
fn a_new_version_during_analysis_replaces_the_release_under_way() {
    let mut d = Drive::new(steady(Color::Blue, "1.0.0"), "2.0.0");
    d.drive_to_analysis();
    d.round(true);
    d.desired = release("2.0.1");
    assert_eq!(d.step(), RolloutStage::Migrating);
    assert_eq!(d.state.rollout.target_version, "2.0.1");
    assert_eq!(d.state.rollout.target_color, Some(Color::Green));
    // Back to the serving release: nothing to roll out.
    d.desired = release("1.0.0");
    assert_eq!(d.step(), RolloutStage::Idle);
}

#[test]
fn a_first_deploy_is_analysed_before_any_service_points_at_it() {
    let mut d = Drive::new(State::default(), "1.0.0");
    d.drive_to_analysis();
    assert_eq!(d.state.rollout.target_color, Some(Color::Blue));
    let plan = plan_colors(&d.state, &d.settings, &d.desired, false, false);
    assert!(!plan.serving, "the active Service selects no pods yet");
    assert_eq!(plan.blue.replicas, Some(1));
    assert_eq!(plan.blue.version, "1.0.0");
    for _ in 0..3 {
        d.round(false);
    }
    assert_eq!(d.state.rollout.stage, RolloutStage::Aborted);
    assert_eq!(d.state.active, None);
    let plan = plan_colors(&d.state, &d.settings, &d.desired, false, false);
    assert!(!plan.serving);
    assert_eq!(d.state.last_rollback.clone().unwrap().to_version, "");
}

#[test]
fn a_healthy_first_deploy_ends_idle_without_a_scale_down_stage() {
    let mut d = Drive::new(State::default(), "1.0.0");
    d.settings.post_promotion = Duration::from_secs(4);
    d.drive_to_analysis();
    for _ in 0..5 {
        d.round(true);
    }
    let v = view("demo-blue", &d.target_image(), 3);
    assert_eq!(
        d.step_with(Some(&v), JobState::Missing, None),
        RolloutStage::PostPromotion
    );
    let plan = plan_colors(&d.state, &d.settings, &d.desired, false, false);
    assert_eq!(
        plan.green.replicas,
        Some(0),
        "no old color to keep at full size"
    );
    d.round(true);
    assert_eq!(d.round(true), RolloutStage::Idle);
    assert_eq!(d.state.active, Some(serving(Color::Blue, "1.0.0")));
    assert_eq!(d.state.history.len(), 1);
    let plan = plan_colors(&d.state, &d.settings, &d.desired, false, false);
    assert!(plan.serving);
    assert_eq!(plan.migration, None);
}

#[test]
fn the_backup_before_a_migration_is_recorded() {
    let mut d = Drive::new(steady(Color::Blue, "1.0.0"), "2.0.0");
    d.settings.backup_before_migration = true;
    assert_eq!(d.step(), RolloutStage::BackingUp);
    let inputs = Inputs {
        now: at(10),
        desired: d.desired.clone(),
        settings: &d.settings,
        target_view: None,
        migration: JobState::Missing,
        backup: JobState::Succeeded {
            backup_id: Some("20261129T010203Z-ab12".into()),
        },
        round: None,
        commands: &[],
        previous: None,
        stuck: &[],
    };
    let (next, _) = step(&d.state, &inputs);
    assert_eq!(next.rollout.stage, RolloutStage::Migrating);
    assert_eq!(
        next.rollout.backup_id.as_deref(),
        Some("20261129T010203Z-ab12")
    );
    let failed = Inputs {
        backup: JobState::Failed("StorageAccessDenied: bucket refused".into()),
        ..inputs
    };
    let (next, _) = step(&d.state, &failed);
    assert_eq!(next.rollout.reason, Reason::BackupFailed.as_str());
}

#[test]
fn rounds_are_due_once_per_interval_and_steps_are_scheduled() {
    let mut d = Drive::new(steady(Color::Blue, "1.0.0"), "2.0.0");
    d.drive_to_analysis();
    let s = &d.settings;
    assert_eq!(round_due(&d.state, s, at(d.t)), Some(Color::Green));
    d.round(true);
    assert_eq!(round_due(&d.state, &d.settings, at(d.t + 1)), None);
    assert_eq!(
        next_step_in(&d.state, &d.settings, at(d.t + 1)),
        Some(Duration::from_secs(1))
    );
    assert_eq!(
        round_due(&d.state, &d.settings, at(d.t + 2)),
        Some(Color::Green)
    );
}

#[test]
fn an_older_status_without_images_does_not_trigger_a_rollout() {
    let mut state = steady(Color::Blue, "1.0.0");
    state.active.as_mut().unwrap().image.clear();
    let mut d = Drive::new(state, "1.0.0");
    assert_eq!(d.step(), RolloutStage::Idle);
    assert!(d.effects.is_empty());
}

impl Drive {
    /// One step with a command annotation present.
    fn command(&mut self, command: RolloutCommand) -> RolloutStage {
        self.commands = vec![command];
        self.t += 1;
        let stage = self.step();
        self.commands.clear();
        stage
    }

    fn last_command(&self) -> (bool, String) {
        self.effects
            .iter()
            .rev()
            .find_map(|e| match e {
                Effect::Command {
                    applied, message, ..
                } => Some((*applied, message.clone())),
                _ => None,
            })
            .unwrap()
    }
}

fn entry(v: &str) -> HistoryEntry {
    HistoryEntry {
        version: v.into(),
        promoted_at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at(0)),
        backup_id: None,
    }
}

#[test]
fn promote_applies_only_while_waiting_for_promotion() {
    let mut d = Drive::new(steady(Color::Blue, "1.0.0"), "2.0.0");
    d.settings.auto_promote = false;
    d.drive_to_analysis();
    let before = d.state.clone();
    assert_eq!(d.command(RolloutCommand::Promote), RolloutStage::Analysing);
    let (applied, why) = d.last_command();
    assert!(!applied);
    assert!(why.contains("stage Analysing"), "{why}");
    assert_eq!(
        d.state.rollout.checks, before.rollout.checks,
        "nothing changed"
    );
    for _ in 0..5 {
        d.round(true);
    }
    assert_eq!(d.command(RolloutCommand::Promote), RolloutStage::Promoting);
    assert!(d.last_command().0);
}

#[test]
fn abort_after_promotion_switches_back_and_retry_starts_over() {
    let mut d = Drive::new(steady(Color::Blue, "1.0.0"), "2.0.0");
    d.settings.migrations = false;
    d.step();
    let v = view("demo-green", &d.target_image(), 1);
    d.step_with(Some(&v), JobState::Missing, None);
    for _ in 0..5 {
        d.round(true);
    }
    let v = view("demo-green", &d.target_image(), 3);
    d.step_with(Some(&v), JobState::Missing, None);
    assert_eq!(d.state.active.as_ref().unwrap().color, Color::Green);
    assert_eq!(d.command(RolloutCommand::Abort), RolloutStage::Aborted);
    assert_eq!(d.state.active, Some(serving(Color::Blue, "1.0.0")));
    assert_eq!(d.state.rollout.reason, Reason::Aborted.as_str());
    assert_eq!(d.state.last_rollback.clone().unwrap().reason, "Aborted");
    assert_eq!(d.step(), RolloutStage::Aborted, "not retried by itself");
    assert_eq!(d.command(RolloutCommand::Retry), RolloutStage::Previewing);
    assert_eq!(d.state.rollout.target_version, "2.0.0");
}

#[test]
fn rollback_in_idle_rolls_out_the_previous_release_and_pins_it() {
    let mut state = steady(Color::Green, "2.0.0");
    state.preview = Some(ColorStatus {
        ready_replicas: 0,
        ..serving(Color::Blue, "1.0.0")
    });
    state.history = vec![entry("2.0.0"), entry("1.0.0")];
    let mut d = Drive::new(state, "2.0.0");
    d.settings.migrations = false;
    d.settings.post_promotion = Duration::from_secs(2);
    // The request to roll back is the decision to promote: no second manual step.
    d.settings.auto_promote = false;
    d.previous = Some(release("1.0.0"));
    assert_eq!(
        d.command(RolloutCommand::Rollback),
        RolloutStage::Previewing
    );
    assert!(d.state.rollout.rollback);
    assert_eq!(d.state.rollout.target_version, "1.0.0");
    let v = view("demo-blue", "fp:1.0.0", 1);
    d.step_with(Some(&v), JobState::Missing, None);
    assert_eq!(
        d.round(true),
        RolloutStage::Analysing,
        "analysed like any release"
    );
    d.round(true);
    d.round(true);
    d.round(true);
    d.round(true);
    let v = view("demo-blue", "fp:1.0.0", 3);
    assert_eq!(
        d.step_with(Some(&v), JobState::Missing, None),
        RolloutStage::PostPromotion
    );
    d.round(true);
    assert_eq!(d.round(true), RolloutStage::ScalingDown);
    d.t += 30;
    assert_eq!(d.step(), RolloutStage::Aborted);
    assert_eq!(d.state.rollout.reason, Reason::RolledBack.as_str());
    assert_eq!(
        d.state.rollout.target_version, "2.0.0",
        "the rejected release"
    );
    assert_eq!(d.state.active, Some(serving(Color::Blue, "1.0.0")));
    d.t += 600;
    assert_eq!(d.step(), RolloutStage::Aborted, "2.0.0 stays rejected");
}

#[test]
fn rollback_during_scale_down_is_an_instant_switch() {
    let mut d = Drive::new(steady(Color::Blue, "1.0.0"), "2.0.0");
    d.settings.migrations = false;
    d.settings.post_promotion = Duration::from_secs(2);
    d.step();
    let v = view("demo-green", &d.target_image(), 1);
    d.step_with(Some(&v), JobState::Missing, None);
    for _ in 0..5 {
        d.round(true);
    }
    let v = view("demo-green", &d.target_image(), 3);
    d.step_with(Some(&v), JobState::Missing, None);
    d.round(true);
    assert_eq!(d.round(true), RolloutStage::ScalingDown);
    assert_eq!(d.command(RolloutCommand::Rollback), RolloutStage::Aborted);
    assert_eq!(d.state.active, Some(serving(Color::Blue, "1.0.0")));
    assert!(
        d.state.history.is_empty(),
        "the rolled-back release leaves the history"
    );
    let plan = plan_colors(&d.state, &d.settings, &d.desired, false, false);
    assert_eq!(plan.blue.replicas, Some(3));
    assert_eq!(plan.green.replicas, Some(0));
}

#[test]
fn rolling_back_a_configuration_change_before_scale_down_keeps_the_serving_entry() {
    let mut state = steady(Color::Blue, "1.0.0");
    state.active.as_mut().unwrap().config = "c1".into();
    state.history = vec![entry("1.0.0")];
    let mut d = Drive::new(state, "1.0.0");
    d.desired.config = "c2".into();
    d.settings.migrations = false;
    assert_eq!(d.step(), RolloutStage::Previewing);
    let mut v = view("demo-green", &d.target_image(), 1);
    v.config = "c2".into();
    d.step_with(Some(&v), JobState::Missing, None);
    for _ in 0..5 {
        d.round(true);
    }
    v.desired = 3;
    v.ready = 3;
    v.updated = 3;
    v.available = 3;
    assert_eq!(
        d.step_with(Some(&v), JobState::Missing, None),
        RolloutStage::PostPromotion
    );
    // Not yet promoted into history: the 1.0.0 entry is the release being returned to.
    assert_eq!(d.command(RolloutCommand::Rollback), RolloutStage::Aborted);
    assert_eq!(d.state.history, vec![entry("1.0.0")]);
    assert_eq!(
        d.state.active.as_ref().map(|a| a.config.as_str()),
        Some("c1")
    );
}

#[test]
fn a_preview_whose_readiness_fails_is_rejected_before_the_deadline() {
    let mut d = Drive::new(steady(Color::Blue, "1.0.0"), "2.0.0-broken-ready");
    d.settings.migrations = false;
    assert_eq!(d.step(), RolloutStage::Previewing);
    assert_eq!(
        round_due(&d.state, &d.settings, at(d.t)),
        Some(Color::Green)
    );
    // Refused connections of a starting pod do not count.
    let starting = Round {
        passed: false,
        error: "check ready: GET /health/ready on 127.0.3.4:8080 connection refused".into(),
        answered: false,
    };
    for _ in 0..5 {
        d.t += 2;
        assert_eq!(
            d.step_with(None, JobState::Missing, Some(starting.clone())),
            RolloutStage::Previewing
        );
    }
    assert_eq!(d.round(false), RolloutStage::Previewing);
    assert_eq!(d.round(false), RolloutStage::Previewing);
    assert_eq!(d.round(false), RolloutStage::Aborted);
    assert_eq!(d.state.rollout.reason, Reason::AnalysisFailed.as_str());
    assert!(
        d.state.rollout.message.contains("returned 503"),
        "{}",
        d.state.rollout.message
    );
}

fn configured(v: &str, config: &str) -> Release {
    Release {
        config: config.into(),
        ..release(v)
    }
}

fn view_with_config(name: &str, image: &str, config: &str, available: i32) -> DeploymentView {
    DeploymentView {
        config: config.into(),
        ..view(name, image, available)
    }
}

#[test]
fn a_configuration_change_is_rolled_out_like_a_new_version_without_migrating() {
    let mut start = steady(Color::Blue, "1.0.0");
    start.active.as_mut().unwrap().config = "cfg-a".into();
    let mut d = Drive::new(start, "1.0.0");
    d.desired = configured("1.0.0", "cfg-b");
    d.settings.backup_before_migration = true;
    // The same version has the same schema: straight to the preview, no backup, no migration.
    assert_eq!(d.step(), RolloutStage::Previewing);
    let r = &d.state.rollout;
    assert_eq!(
        (r.target_version.as_str(), r.target_config.as_str()),
        ("1.0.0", "cfg-b")
    );
    assert_eq!(
        r.message,
        "rolling out 1.0.0 (configuration cfg-b) on green (serving 1.0.0)"
    );
    let plan = plan_colors(&d.state, &d.settings, &d.desired, false, false);
    assert_eq!(plan.migration, None, "nothing to migrate");
    assert_eq!(plan.pre_migration_backup, None, "nothing to back up");
    assert_eq!(plan.blue.config, "cfg-a", "the serving color keeps its own");
    assert_eq!(plan.green.config, "cfg-b");
    // Pods of the old configuration (same image) are not the preview.
    let stale = view_with_config("demo-green", &d.target_image(), "cfg-a", 1);
    assert_eq!(
        d.step_with(Some(&stale), JobState::Missing, None),
        RolloutStage::Previewing
    );
    let fresh = view_with_config("demo-green", &d.target_image(), "cfg-b", 1);
    assert_eq!(
        d.step_with(Some(&fresh), JobState::Missing, None),
        RolloutStage::Analysing
    );
    for _ in 0..5 {
        d.round(true);
    }
    let full = view_with_config("demo-green", &d.target_image(), "cfg-b", 3);
    assert_eq!(
        d.step_with(Some(&full), JobState::Missing, None),
        RolloutStage::PostPromotion
    );
    let active = d.state.active.clone().unwrap();
    assert_eq!(
        (active.color, active.config.as_str()),
        (Color::Green, "cfg-b")
    );
    assert_eq!(d.state.preview.as_ref().unwrap().config, "cfg-a");
    // The old color keeps the old configuration at full size until the scale-down.
    let plan = plan_colors(&d.state, &d.settings, &d.desired, false, false);
    assert_eq!(
        (plan.blue.config.as_str(), plan.blue.replicas),
        ("cfg-a", Some(3))
    );
}

#[test]
fn a_configuration_that_fails_analysis_is_rolled_back_and_not_retried() {
    let mut start = steady(Color::Blue, "1.0.0");
    start.active.as_mut().unwrap().config = "cfg-a".into();
    let mut d = Drive::new(start, "1.0.0");
    d.desired = configured("1.0.0", "cfg-bad");
    assert_eq!(d.step(), RolloutStage::Previewing);
    let v = view_with_config("demo-green", &d.target_image(), "cfg-bad", 1);
    d.step_with(Some(&v), JobState::Missing, None);
    d.round(false);
    d.round(false);
    assert_eq!(d.round(false), RolloutStage::Aborted);
    assert_eq!(d.state.active.as_ref().unwrap().config, "cfg-a");
    d.t += 600;
    assert_eq!(d.step(), RolloutStage::Aborted, "not retried as is");
    // The spec (or the Secret) changed back: nothing to roll out.
    d.desired = configured("1.0.0", "cfg-a");
    assert_eq!(d.step(), RolloutStage::Idle);
}

#[test]
fn a_status_from_before_configuration_revisions_adopts_the_spec_without_a_rollout() {
    // `serving` has no configuration recorded.
    let mut d = Drive::new(steady(Color::Blue, "1.0.0"), "1.0.0");
    d.desired = configured("1.0.0", "cfg-a");
    assert_eq!(d.step(), RolloutStage::Idle);
    assert_eq!(d.state.active.as_ref().unwrap().config, "cfg-a");
    // From then on a change is a release.
    d.desired = configured("1.0.0", "cfg-b");
    assert_eq!(d.step(), RolloutStage::Previewing);
}

fn stuck(pod: &str, waiting_reason: &str) -> StuckContainer {
    StuckContainer {
        pod: pod.into(),
        container: "api".into(),
        image: "registry.test/fp:2.0.0-typo".into(),
        waiting_reason: waiting_reason.into(),
        message: "pull access denied".into(),
        trouble: Trouble::of_waiting_reason(waiting_reason).unwrap(),
    }
}

/// Drives a rollout of 2.0.0 (serving 1.0.0 on blue) into `stage`.
fn drive_to(stage: RolloutStage) -> Drive {
    let mut d = Drive::new(steady(Color::Blue, "1.0.0"), "2.0.0");
    d.settings.backup_before_migration = stage == RolloutStage::BackingUp;
    d.step();
    if stage == RolloutStage::Previewing {
        let done = JobState::Succeeded { backup_id: None };
        assert_eq!(d.step_with(None, done, None), RolloutStage::Previewing);
    }
    if stage == RolloutStage::Promoting {
        d.drive_to_analysis();
        for _ in 0..5 {
            d.round(true);
        }
    }
    assert_eq!(d.state.rollout.stage, stage);
    d
}

#[test]
fn a_container_in_trouble_for_the_grace_aborts_every_stage_that_starts_pods() {
    for (stage, waiting_reason, reason) in [
        (
            RolloutStage::BackingUp,
            "ErrImagePull",
            Reason::ImagePullFailed,
        ),
        (
            RolloutStage::Migrating,
            "ImagePullBackOff",
            Reason::ImagePullFailed,
        ),
        (
            RolloutStage::Migrating,
            "InvalidImageName",
            Reason::ImagePullFailed,
        ),
        (
            RolloutStage::Previewing,
            "CreateContainerConfigError",
            Reason::ContainerCannotStart,
        ),
        (
            RolloutStage::Previewing,
            "CrashLoopBackOff",
            Reason::ContainerCrashLooping,
        ),
        (
            RolloutStage::Promoting,
            "ErrImagePull",
            Reason::ImagePullFailed,
        ),
    ] {
        let mut d = drive_to(stage);
        d.effects.clear();
        d.stuck = vec![stuck("demo-green-1", waiting_reason)];
        d.t += 1;
        assert_eq!(
            d.step_with(None, JobState::Running, None),
            stage,
            "{stage:?}: first sighting"
        );
        let seen = d.state.rollout.start_failure.clone().unwrap();
        assert_eq!(
            (seen.pod.as_str(), seen.waiting_reason.as_str()),
            ("demo-green-1", waiting_reason)
        );
        // The reconcile comes back by the time the grace runs out, even with a long interval.
        let mut slow = d.settings.clone();
        slow.interval = Duration::from_secs(600);
        let next = next_step_in(&d.state, &slow, at(d.t + 20)).unwrap();
        assert!(next <= Duration::from_secs(10), "{stage:?}: {next:?}");
        d.t += 29;
        assert_eq!(
            d.step_with(None, JobState::Running, None),
            stage,
            "{stage:?}: within the grace"
        );
        d.t += 1;
        assert_eq!(
            d.step_with(None, JobState::Running, None),
            RolloutStage::Aborted,
            "{stage:?}: grace over"
        );
        let r = &d.state.rollout;
        assert_eq!(r.reason, reason.as_str(), "{stage:?}");
        assert!(
            r.message.contains("demo-green-1") && r.message.contains("registry.test/fp:2.0.0-typo"),
            "{}",
            r.message
        );
        assert!(
            r.message.contains(&format!("{}:", stage.as_str())),
            "{}",
            r.message
        );
        assert!(
            r.message.ends_with("1.0.0 keeps serving on blue"),
            "{}",
            r.message
        );
        // Traffic never moved: blue still serves 1.0.0.
        assert_eq!(
            d.state.active,
            Some(serving(Color::Blue, "1.0.0")),
            "{stage:?}"
        );
        assert!(
            d.effects
                .iter()
                .any(|e| matches!(e, Effect::RolledBack { reason: r, .. } if *r == reason)),
            "{stage:?}"
        );
    }
}

#[test]
fn trouble_that_clears_or_moves_restarts_the_grace() {
    let mut d = drive_to(RolloutStage::Migrating);
    d.stuck = vec![stuck("job-pod-1", "ErrImagePull")];
    d.step_with(None, JobState::Running, None);
    // ErrImagePull and ImagePullBackOff take turns: the same trouble, the grace keeps counting.
    d.t += 20;
    d.stuck = vec![stuck("job-pod-1", "ImagePullBackOff")];
    d.step_with(None, JobState::Running, None);
    assert_eq!(
        d.state.rollout.start_failure.as_ref().unwrap().since.0,
        at(0)
    );
    // The image pulled after all (a slow registry): nothing held against it.
    d.t += 5;
    d.stuck.clear();
    d.step_with(None, JobState::Running, None);
    assert_eq!(d.state.rollout.start_failure, None);
    // Another pod in trouble starts its own grace.
    d.t += 5;
    d.stuck = vec![stuck("job-pod-2", "ErrImagePull")];
    d.step_with(None, JobState::Running, None);
    d.t += 29;
    assert_eq!(
        d.step_with(None, JobState::Running, None),
        RolloutStage::Migrating
    );
    // A pull error turning into a crash loop is new trouble too (the image did arrive).
    d.stuck = vec![stuck("job-pod-2", "CrashLoopBackOff")];
    d.t += 5;
    assert_eq!(
        d.step_with(None, JobState::Running, None),
        RolloutStage::Migrating
    );
    assert_eq!(
        d.state.rollout.start_failure.as_ref().unwrap().since.0,
        at(d.t)
    );
}

#[test]
fn trouble_is_forgotten_on_the_next_stage_and_ignored_where_no_pods_start() {
    let mut d = drive_to(RolloutStage::Migrating);
    d.stuck = vec![stuck("job-pod-1", "CrashLoopBackOff")];
    d.step_with(None, JobState::Running, None);
    assert!(d.state.rollout.start_failure.is_some());
    let done = JobState::Succeeded { backup_id: None };
    assert_eq!(d.step_with(None, done, None), RolloutStage::Previewing);
    assert_eq!(d.state.rollout.start_failure, None);
    // Analysing judges by rounds only; a stuck list there (there is none in practice) is ignored.
    let mut d = drive_to(RolloutStage::Promoting);
    let mut analysing = d.state.clone();
    analysing.rollout.stage = RolloutStage::Analysing;
    d.state = analysing;
    d.stuck = vec![stuck("demo-green-1", "ErrImagePull")];
    d.t += 3600;
    assert_eq!(
        d.step_with(None, JobState::Missing, None),
        RolloutStage::Analysing
    );
    assert_eq!(d.state.rollout.start_failure, None);
}

#[test]
fn a_first_deploy_that_cannot_pull_says_nothing_served() {
    let mut d = Drive::new(State::default(), "1.0.0");
    d.settings.migrations = false;
    assert_eq!(d.step(), RolloutStage::Previewing);
    d.stuck = vec![stuck("demo-blue-1", "ImagePullBackOff")];
    d.step();
    d.t += 30;
    assert_eq!(d.step(), RolloutStage::Aborted);
    assert!(
        d.state.rollout.message.ends_with("nothing served before"),
        "{}",
        d.state.rollout.message
    );
    assert_eq!(d.state.active, None);
}

#[test]
fn a_grace_of_zero_aborts_at_first_sight() {
    let mut d = drive_to(RolloutStage::Migrating);
    d.settings.start_failure_grace = Duration::ZERO;
    d.stuck = vec![stuck("job-pod-1", "ErrImagePull")];
    assert_eq!(
        d.step_with(None, JobState::Running, None),
        RolloutStage::Aborted
    );
}
