//! The blue-green rollout: a pure state machine ([`machine`]) over `status.rollout`, `status.active`
//! and `status.preview`, and the color plan derived from its state ([`plan`]) that the builders turn
//! into Deployments, Services and the migration Job. The reconcile feeds it observations (Deployment
//! views, Job outcomes, analysis rounds, command annotations); an operator restart resumes from the
//! status alone.

pub mod machine;
pub mod plan;
pub mod stuck;
#[cfg(test)]
mod tests;
mod transitions;
pub mod view;

pub use machine::{Effect, Inputs, JobState, Release, RolloutSettings, Round, State, step};
pub use plan::plan_colors;
pub use stuck::{StuckContainer, stuck_containers};
pub use view::DeploymentView;
