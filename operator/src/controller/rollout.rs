//! Which color serves and what each color runs. For now a version change updates the active color
//! in place; the blue-green state machine replaces [`plan_colors`] and keeps its output type, so the
//! builders do not change.

use crate::controller::validate::Validated;
use crate::crd::{Color, FootballPredictionStatus};
use crate::resources::{ColorPlan, ColorTarget};

/// The color plan: the active color (from status; blue on first deploy) runs `spec.version` at
/// `spec.replicas` (left to the autoscaler when autoscaling is on); the idle color keeps the release
/// it last ran at zero pods.
pub fn plan_colors(v: &Validated, status: Option<&FootballPredictionStatus>) -> ColorPlan {
    let active = status
        .and_then(|s| s.active.as_ref())
        .map_or(Color::Blue, |a| a.color);
    let idle_version = status
        .and_then(|s| s.preview.as_ref())
        .filter(|p| p.color == active.other() && !p.version.is_empty())
        .map_or_else(|| v.spec.version.clone(), |p| p.version.clone());
    let active_target = ColorTarget {
        version: v.spec.version.clone(),
        image: v.image_for(&v.spec.version),
        replicas: if v.spec.autoscaling.is_some() {
            None
        } else {
            Some(v.spec.replicas)
        },
    };
    let idle_target = ColorTarget {
        image: v.image_for(&idle_version),
        version: idle_version,
        replicas: Some(0),
    };
    let (blue, green) = match active {
        Color::Blue => (active_target, idle_target),
        Color::Green => (idle_target, active_target),
    };
    ColorPlan {
        active,
        blue,
        green,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::validate::tests::validated;
    use crate::crd::ColorStatus;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    #[test]
    fn first_deploy_puts_the_version_on_blue() {
        let v = validated(json!({"version": "1.4.2", "replicas": 3}));
        let plan = plan_colors(&v, None);
        assert_eq!(plan.active, Color::Blue);
        assert_eq!(
            plan.blue,
            ColorTarget {
                version: "1.4.2".into(),
                image: "footballprediction/fp-api-server:1.4.2".into(),
                replicas: Some(3)
            }
        );
        assert_eq!(plan.green.replicas, Some(0));
        assert_eq!(plan.green.version, "1.4.2");
    }

    #[test]
    fn a_version_change_updates_the_active_color_and_keeps_the_idle_release() {
        let v = validated(json!({"version": "1.5.0", "replicas": 2}));
        let status = FootballPredictionStatus {
            active: Some(ColorStatus {
                color: Color::Green,
                version: "1.4.2".into(),
                image: String::new(),
                ready_replicas: 2,
            }),
            preview: Some(ColorStatus {
                color: Color::Blue,
                version: "1.4.1".into(),
                image: String::new(),
                ready_replicas: 0,
            }),
            ..FootballPredictionStatus::default()
        };
        let plan = plan_colors(&v, Some(&status));
        assert_eq!(plan.active, Color::Green);
        assert_eq!(plan.green.version, "1.5.0");
        assert_eq!(plan.green.replicas, Some(2));
        assert_eq!(plan.blue.version, "1.4.1");
        assert_eq!(plan.blue.image, "footballprediction/fp-api-server:1.4.1");
        assert_eq!(plan.blue.replicas, Some(0));
    }

    #[test]
    fn autoscaling_leaves_the_active_count_to_the_autoscaler() {
        let v =
            validated(json!({"version": "1", "autoscaling": {"minReplicas": 2, "maxReplicas": 6}}));
        let plan = plan_colors(&v, None);
        assert_eq!(plan.blue.replicas, None);
        assert_eq!(plan.green.replicas, Some(0));
    }
}
