//! The desired state of the two API colors: input data of the Deployment, Service, autoscaler and
//! migration Job builders. The rollout state machine only computes this; the builders turn it into
//! objects.

use crate::crd::Color;

/// What one color's Deployment should run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColorTarget {
    /// Release of the color (`FP_RELEASE_VERSION`).
    pub version: String,
    /// Full image reference.
    pub image: String,
    /// Configuration revision of the release (see `deployment::config_revision`).
    pub config: String,
    /// Pods; `None` leaves the count to the HorizontalPodAutoscaler.
    pub replicas: Option<i32>,
}

/// Which color serves traffic and what both colors run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColorPlan {
    /// Color behind Service `<name>`; the other is behind `<name>-preview`.
    pub active: Color,
    /// Whether Service `<name>` selects `active`'s pods at all: not before a first release passed
    /// its analysis (nothing serves an unverified release).
    pub serving: bool,
    pub blue: ColorTarget,
    pub green: ColorTarget,
    /// The release whose migration Job should exist (during a rollout).
    pub migration: Option<ColorTarget>,
    /// Key of the rollout whose pre-migration backup Job should exist (`backup.beforeMigration`).
    pub pre_migration_backup: Option<String>,
}

impl ColorPlan {
    pub fn target(&self, color: Color) -> &ColorTarget {
        match color {
            Color::Blue => &self.blue,
            Color::Green => &self.green,
        }
    }

    pub fn preview(&self) -> Color {
        self.active.other()
    }
}
