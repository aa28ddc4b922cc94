//! Rollout commands people give through annotations (`kubectl fp promote|abort|retry|rollback`):
//! which annotation carries each, and whether it applies to the rollout as it stands. Pure, so the
//! operator (acting on a command) and the plugin (refusing one before sending it) agree.

use std::collections::BTreeMap;
use std::fmt;

use super::commands;
use super::status::{FootballPredictionStatus, RolloutStage, RolloutStatus};

/// A request to steer the blue-green rollout, carried by an annotation whose value is a request id
/// (an RFC 3339 timestamp).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RolloutCommand {
    /// Switch traffic to a preview that passed analysis (`autoPromote: false`).
    Promote,
    /// Stop the rollout in flight; the active Service stays on (or goes back to) the last good color.
    Abort,
    /// Roll out `spec.version` again after an abort.
    Retry,
    /// Go back to the previous good release.
    Rollback,
}

impl RolloutCommand {
    /// Every command, in the order the operator acts on them when several are present: stopping
    /// wins over going back, going back over starting again, and all of them over going forward.
    pub const ALL: [Self; 4] = [Self::Abort, Self::Rollback, Self::Retry, Self::Promote];

    /// Annotation key that carries the command.
    pub fn annotation(self) -> &'static str {
        match self {
            Self::Promote => commands::PROMOTE,
            Self::Abort => commands::ABORT,
            Self::Retry => commands::RETRY,
            Self::Rollback => commands::ROLLBACK,
        }
    }

    /// Lower-case name, as in `kubectl fp <name>`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Promote => "promote",
            Self::Abort => "abort",
            Self::Retry => "retry",
            Self::Rollback => "rollback",
        }
    }

    /// The command an annotation key carries, if any.
    pub fn from_annotation(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.annotation() == key)
    }

    /// Commands present as annotations, in the order of [`Self::ALL`].
    pub fn pending(annotations: &BTreeMap<String, String>) -> Vec<Self> {
        Self::ALL
            .into_iter()
            .filter(|c| annotations.contains_key(c.annotation()))
            .collect()
    }

    /// Whether the command applies to the rollout as the status describes it, with `spec_version`
    /// the release the spec asks for. `Err` says in one sentence why not and what would apply.
    pub fn applies(
        self,
        spec_version: &str,
        status: Option<&FootballPredictionStatus>,
    ) -> Result<(), String> {
        let idle = RolloutStatus::default();
        let rollout = status.and_then(|s| s.rollout.as_ref()).unwrap_or(&idle);
        let stage = rollout.stage;
        let target = if rollout.target_version.is_empty() {
            "the new release".to_owned()
        } else {
            format!("release {}", rollout.target_version)
        };
        match self {
            Self::Promote => match stage {
                RolloutStage::AwaitingPromotion => Ok(()),
                _ => Err(format!(
                    "nothing to promote: the rollout is in stage {}; promote applies once analysis \
                     passed and the rollout waits for promotion (spec.rollout.autoPromote: false)",
                    stage.as_str()
                )),
            },
            Self::Abort => match stage {
                RolloutStage::ScalingDown => Err(format!(
                    "too late to abort: {target} passed analysis and serves traffic (stage \
                     ScalingDown); use rollback to go back to the previous release"
                )),
                RolloutStage::Idle | RolloutStage::Aborted => Err(format!(
                    "nothing to abort: no rollout is in progress (stage {}); abort applies from \
                     BackingUp until PostPromotion",
                    stage.as_str()
                )),
                // Before promotion, and during post-promotion analysis.
                _ => Ok(()),
            },
            Self::Retry => match stage {
                RolloutStage::Aborted if rollout.target_version == spec_version => Ok(()),
                RolloutStage::Aborted => Err(format!(
                    "nothing to retry: the aborted rollout was of release {} but spec.version is \
                     {spec_version}, which starts its own rollout",
                    if rollout.target_version.is_empty() {
                        "(unknown)"
                    } else {
                        &rollout.target_version
                    }
                )),
                _ => Err(format!(
                    "nothing to retry: the rollout is in stage {}; retry applies only after a \
                     rollout of spec.version was aborted",
                    stage.as_str()
                )),
            },
            Self::Rollback => match stage {
                // The old color still runs at full size: switching back is instant.
                s if s.switched() => Ok(()),
                RolloutStage::Idle => {
                    let history = status.map_or(&[][..], |s| s.history.as_slice());
                    match (status.and_then(|s| s.rollback_target()), history.first()) {
                        (Some(_), _) => Ok(()),
                        (None, Some(current)) => Err(format!(
                            "no previous good release in status.history: every promoted release \
                             is {} (configuration changes promote the same version again); \
                             rollback needs another version",
                            current.version
                        )),
                        (None, None) => Err("no previous good release in status.history: nothing \
                                             was promoted yet; rollback needs two promoted releases"
                            .to_owned()),
                    }
                }
                RolloutStage::Aborted => Err(format!(
                    "nothing to roll back: the rollout of {target} was aborted and the active color \
                     still serves the last good release; change spec.version or retry"
                )),
                // The rest: before promotion.
                _ => Err(format!(
                    "nothing to roll back yet: {target} does not serve traffic (stage {}); use \
                     abort to stop the rollout",
                    stage.as_str()
                )),
            },
        }
    }
}

impl fmt::Display for RolloutCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::HistoryEntry;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    const STAGES: [RolloutStage; 10] = [
        RolloutStage::Idle,
        RolloutStage::BackingUp,
        RolloutStage::Migrating,
        RolloutStage::Previewing,
        RolloutStage::Analysing,
        RolloutStage::AwaitingPromotion,
        RolloutStage::Promoting,
        RolloutStage::PostPromotion,
        RolloutStage::ScalingDown,
        RolloutStage::Aborted,
    ];

    fn entry(version: &str) -> HistoryEntry {
        HistoryEntry {
            version: version.into(),
            promoted_at: Time("2026-11-28T03:00:00Z".parse().unwrap()),
            backup_id: None,
        }
    }

    /// A status in `stage`, rolling out (or having rejected) `target`, with `history` newest first.
    fn status(stage: RolloutStage, target: &str, history: &[&str]) -> FootballPredictionStatus {
        FootballPredictionStatus {
            rollout: Some(RolloutStatus {
                stage,
                target_version: target.into(),
                ..RolloutStatus::default()
            }),
            history: history.iter().map(|v| entry(v)).collect(),
            ..FootballPredictionStatus::default()
        }
    }

    /// Stages in which `command` applies to a rollout of spec.version 1.5.0 with two promoted releases.
    fn applicable_stages(command: RolloutCommand) -> Vec<RolloutStage> {
        STAGES
            .into_iter()
            .filter(|stage| {
                command
                    .applies("1.5.0", Some(&status(*stage, "1.5.0", &["1.4.2", "1.4.1"])))
                    .is_ok()
            })
            .collect()
    }

    #[test]
    fn annotations_and_names() {
        assert_eq!(
            RolloutCommand::Promote.annotation(),
            "footballprediction.io/promote"
        );
        assert_eq!(
            RolloutCommand::Abort.annotation(),
            "footballprediction.io/abort"
        );
        assert_eq!(
            RolloutCommand::Retry.annotation(),
            "footballprediction.io/retry"
        );
        assert_eq!(
            RolloutCommand::Rollback.annotation(),
            "footballprediction.io/rollback"
        );
        for command in RolloutCommand::ALL {
            assert_eq!(
                command.annotation(),
                format!("footballprediction.io/{command}")
            );
            assert_eq!(
                RolloutCommand::from_annotation(command.annotation()),
                Some(command)
            );
        }
        assert_eq!(
            RolloutCommand::from_annotation("footballprediction.io/spec-hash"),
            None
        );
    }

    #[test]
    fn pending_lists_present_commands_in_a_fixed_order() {
        let annotations = |keys: &[&str]| -> BTreeMap<String, String> {
            keys.iter()
                .map(|k| ((*k).to_owned(), "2026-11-29T10:00:00Z".to_owned()))
                .collect()
        };
        assert_eq!(RolloutCommand::pending(&BTreeMap::new()), vec![]);
        assert_eq!(
            RolloutCommand::pending(&annotations(&["footballprediction.io/spec-hash"])),
            vec![]
        );
        // Alphabetical key order (abort, promote, retry, rollback) is not the order of action.
        assert_eq!(
            RolloutCommand::pending(&annotations(&[
                commands::PROMOTE,
                commands::RETRY,
                commands::ROLLBACK,
                commands::ABORT,
                "kubectl.kubernetes.io/last-applied-configuration",
            ])),
            vec![
                RolloutCommand::Abort,
                RolloutCommand::Rollback,
                RolloutCommand::Retry,
                RolloutCommand::Promote
            ]
        );
        assert_eq!(
            RolloutCommand::pending(&annotations(&[commands::PROMOTE, commands::RETRY])),
            vec![RolloutCommand::Retry, RolloutCommand::Promote]
        );
    }

    #[test]
    fn promote_applies_only_while_awaiting_promotion() {
        assert_eq!(
            applicable_stages(RolloutCommand::Promote),
            vec![RolloutStage::AwaitingPromotion]
        );
        let reason = RolloutCommand::Promote
            .applies(
                "1.5.0",
                Some(&status(RolloutStage::Analysing, "1.5.0", &[])),
            )
            .unwrap_err();
        assert_eq!(
            reason,
            "nothing to promote: the rollout is in stage Analysing; promote applies once analysis \
             passed and the rollout waits for promotion (spec.rollout.autoPromote: false)"
        );
    }

    #[test]
    fn abort_applies_from_backing_up_until_post_promotion() {
        assert_eq!(
            applicable_stages(RolloutCommand::Abort),
            vec![
                RolloutStage::BackingUp,
                RolloutStage::Migrating,
                RolloutStage::Previewing,
                RolloutStage::Analysing,
                RolloutStage::AwaitingPromotion,
                RolloutStage::Promoting,
                RolloutStage::PostPromotion,
            ]
        );
    }

    #[test]
    fn abort_after_analysis_points_to_rollback() {
        let reason = RolloutCommand::Abort
            .applies(
                "1.5.0",
                Some(&status(RolloutStage::ScalingDown, "1.5.0", &["1.5.0"])),
            )
            .unwrap_err();
        assert!(reason.starts_with("too late to abort"), "{reason}");
        assert!(reason.contains("release 1.5.0 passed analysis"), "{reason}");
        assert!(reason.contains("use rollback"), "{reason}");
    }

    #[test]
    fn abort_without_a_rollout_has_nothing_to_abort() {
        for stage in [RolloutStage::Idle, RolloutStage::Aborted] {
            let reason = RolloutCommand::Abort
                .applies("1.5.0", Some(&status(stage, "1.5.0", &[])))
                .unwrap_err();
            assert!(reason.starts_with("nothing to abort"), "{reason}");
            assert!(reason.contains(stage.as_str()), "{reason}");
        }
        // A resource the operator never reconciled has no status at all.
        assert!(RolloutCommand::Abort.applies("1.5.0", None).is_err());
    }

    #[test]
    fn retry_applies_to_an_aborted_rollout_of_spec_version() {
        assert_eq!(
            applicable_stages(RolloutCommand::Retry),
            vec![RolloutStage::Aborted]
        );
        let reason = RolloutCommand::Retry
            .applies("1.4.2", Some(&status(RolloutStage::Idle, "", &["1.4.2"])))
            .unwrap_err();
        assert!(reason.contains("stage Idle"), "{reason}");
        assert!(reason.contains("after a rollout"), "{reason}");
    }

    #[test]
    fn retry_of_another_version_than_the_spec_is_refused() {
        let reason = RolloutCommand::Retry
            .applies(
                "1.6.0",
                Some(&status(RolloutStage::Aborted, "1.5.0", &["1.4.2"])),
            )
            .unwrap_err();
        assert_eq!(
            reason,
            "nothing to retry: the aborted rollout was of release 1.5.0 but spec.version is \
             1.6.0, which starts its own rollout"
        );
    }

    #[test]
    fn rollback_applies_while_the_old_color_runs_and_when_idle_with_two_releases() {
        assert_eq!(
            applicable_stages(RolloutCommand::Rollback),
            vec![
                RolloutStage::Idle,
                RolloutStage::PostPromotion,
                RolloutStage::ScalingDown
            ]
        );
        // PostPromotion and ScalingDown do not need history: the old color is still there.
        for stage in [RolloutStage::PostPromotion, RolloutStage::ScalingDown] {
            assert_eq!(
                RolloutCommand::Rollback.applies("1.5.0", Some(&status(stage, "1.5.0", &[]))),
                Ok(())
            );
        }
    }

    #[test]
    fn rollback_when_idle_needs_a_previous_good_release() {
        let one = RolloutCommand::Rollback
            .applies("1.4.2", Some(&status(RolloutStage::Idle, "", &["1.4.2"])))
            .unwrap_err();
        assert!(
            one.starts_with("no previous good release in status.history"),
            "{one}"
        );
        assert!(one.contains("every promoted release is 1.4.2"), "{one}");
        // Configuration-only rollouts promote the same version again: still nothing to go back to.
        let same = RolloutCommand::Rollback
            .applies(
                "1.4.2",
                Some(&status(
                    RolloutStage::Idle,
                    "",
                    &["1.4.2", "1.4.2", "1.4.2"],
                )),
            )
            .unwrap_err();
        assert!(same.contains("every promoted release is 1.4.2"), "{same}");
        assert_eq!(
            RolloutCommand::Rollback.applies(
                "1.4.2",
                Some(&status(
                    RolloutStage::Idle,
                    "",
                    &["1.4.2", "1.4.2", "1.4.1"]
                ))
            ),
            Ok(())
        );
        let none = RolloutCommand::Rollback
            .applies("1.4.2", Some(&status(RolloutStage::Idle, "", &[])))
            .unwrap_err();
        assert!(
            none.starts_with("no previous good release in status.history"),
            "{none}"
        );
        assert!(RolloutCommand::Rollback.applies("1.4.2", None).is_err());
        // A status without a rollout section is idle.
        let no_rollout = FootballPredictionStatus {
            history: vec![entry("1.4.2"), entry("1.4.1")],
            ..FootballPredictionStatus::default()
        };
        assert_eq!(
            RolloutCommand::Rollback.applies("1.4.2", Some(&no_rollout)),
            Ok(())
        );
    }

    #[test]
    fn rollback_before_the_switch_points_to_abort() {
        let reason = RolloutCommand::Rollback
            .applies(
                "1.5.0",
                Some(&status(
                    RolloutStage::Analysing,
                    "1.5.0",
                    &["1.4.2", "1.4.1"],
                )),
            )
            .unwrap_err();
        assert!(
            reason.contains("release 1.5.0 does not serve traffic"),
            "{reason}"
        );
        assert!(reason.contains("use abort"), "{reason}");
        let aborted = RolloutCommand::Rollback
            .applies(
                "1.5.0",
                Some(&status(RolloutStage::Aborted, "1.5.0", &["1.4.2", "1.4.1"])),
            )
            .unwrap_err();
        assert!(aborted.contains("was aborted"), "{aborted}");
    }

    #[test]
    fn every_refusal_is_one_sentence() {
        for command in RolloutCommand::ALL {
            for stage in STAGES {
                for history in [&[][..], &["1.4.2"][..], &["1.4.2", "1.4.1"][..]] {
                    if let Err(reason) =
                        command.applies("1.5.0", Some(&status(stage, "1.5.0", history)))
                    {
                        assert!(!reason.is_empty());
                        assert!(!reason.contains('\n'), "{reason}");
                        assert!(!reason.trim_end().ends_with('.'), "{reason}");
                        assert!(!reason.contains("  "), "{command} {stage:?}: {reason}");
                    }
                }
            }
        }
    }
}
