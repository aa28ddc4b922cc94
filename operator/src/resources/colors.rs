//! The desired state of the two API colors: input data of the Deployment, Service and autoscaler
//! builders. The rollout logic only computes this; the builders turn it into objects.

use crate::crd::Color;

/// What one color's Deployment should run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColorTarget {
    /// Release of the color (`FP_RELEASE_VERSION`).
    pub version: String,
    /// Full image reference.
    pub image: String,
    /// Pods; `None` leaves the count to the HorizontalPodAutoscaler.
    pub replicas: Option<i32>,
}

/// Which color serves traffic and what both colors run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColorPlan {
    /// Color behind Service `<name>`; the other is behind `<name>-preview`.
    pub active: Color,
    pub blue: ColorTarget,
    pub green: ColorTarget,
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
