//! What each color runs, derived from the rollout state alone (so a restarted operator builds the
//! same objects): the serving color at full size, the rollout's target color at the size its stage
//! wants, the old color at full size until the scale-down delay is over, everything else at zero.

use super::machine::{Release, RolloutSettings, State};
use crate::crd::{Color, ColorStatus, RolloutStage, RolloutStatus};
use crate::reason::Reason;
use crate::resources::{ColorPlan, ColorTarget};

/// The color plan for a state. `autoscaled` leaves the serving color's count to the autoscaler.
pub fn plan_colors(
    state: &State,
    settings: &RolloutSettings,
    desired: &Release,
    autoscaled: bool,
    keep_failed_pods: bool,
) -> ColorPlan {
    let r = &state.rollout;
    // A configuration unknown to an older status is taken to be the desired one.
    let config_or_desired = |config: &str| {
        if config.is_empty() {
            desired.config.clone()
        } else {
            config.to_owned()
        }
    };
    let release_of = |c: &ColorStatus| Release {
        version: c.version.clone(),
        image: c.image.clone(),
        config: config_or_desired(&c.config),
    };
    let target = (!r.target_version.is_empty()).then(|| Release {
        version: r.target_version.clone(),
        image: r.target_image.clone(),
        config: config_or_desired(&r.target_config),
    });
    let serving = state.active.as_ref().map(|a| a.color);
    let full = settings.replicas;
    let color_target = |color: Color| -> ColorTarget {
        let is_target = r.target_color == Some(color);
        let target_replicas = match r.stage {
            stage if stage.previews() => Some(settings.preview_replicas),
            RolloutStage::Promoting => Some(full),
            RolloutStage::Aborted if keep_failed_pods => Some(settings.preview_replicas),
            _ => None,
        };
        let (release, replicas) = if serving == Some(color) {
            let a = state
                .active
                .as_ref()
                .map_or_else(|| desired.clone(), release_of);
            (a, if autoscaled { None } else { Some(full) })
        } else if let (true, Some(t), Some(n)) = (is_target, target.clone(), target_replicas) {
            (t, Some(n))
        } else {
            // Idle color: what it last ran (the old release during post-promotion, kept at full
            // size so a rollback is one Service update), else the release about to run here.
            let old = state
                .preview
                .as_ref()
                .filter(|p| p.color == color && !p.version.is_empty())
                .map(release_of);
            // A first deploy has no old release to keep.
            let keep_old = old.is_some() && r.stage.switched();
            let last = old
                .or(target.clone().filter(|_| is_target))
                .unwrap_or_else(|| desired.clone());
            (last, Some(if keep_old { full } else { 0 }))
        };
        ColorTarget {
            version: release.version,
            image: release.image,
            config: release.config,
            replicas,
        }
    };
    let (migrating, backing_up) = planned_jobs(r, settings);
    ColorPlan {
        pre_migration_backup: backing_up.then(|| rollout_key(state)),
        active: serving.or(r.target_color).unwrap_or(Color::Blue),
        serving: serving.is_some(),
        blue: color_target(Color::Blue),
        green: color_target(Color::Green),
        migration: target.filter(|_| migrating).map(|t| ColorTarget {
            version: t.version,
            image: t.image,
            config: t.config,
            replicas: None,
        }),
    }
}

/// Whether the rollout's migration Job and its pre-migration backup Job should exist now.
fn planned_jobs(r: &RolloutStatus, settings: &RolloutSettings) -> (bool, bool) {
    let failed_with =
        |reason: Reason| r.stage == RolloutStage::Aborted && r.reason == reason.as_str();
    // A configuration change of the serving version migrates nothing (the machine skips those
    // stages too).
    let same_schema = !r.from_version.is_empty() && r.from_version == r.target_version;
    let migrating = settings.migrations
        && !same_schema
        && match r.stage {
            RolloutStage::Idle | RolloutStage::BackingUp => false,
            // A failed migration Job stays for its logs.
            RolloutStage::Aborted => failed_with(Reason::MigrationFailed),
            _ => true,
        };
    let backing_up = settings.backup_before_migration
        && !same_schema
        && (r.stage.in_progress() || failed_with(Reason::BackupFailed));
    (migrating, backing_up)
}

/// Identifies one rollout: a retried rollout of the same release is another one.
pub fn rollout_key(state: &State) -> String {
    let r = &state.rollout;
    let started = r
        .started_at
        .as_ref()
        .map(|t| t.0.to_string())
        .unwrap_or_default();
    format!("{}@{started}", r.target_version)
}
