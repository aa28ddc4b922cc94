//! Containers that will not start by themselves: an image that cannot be pulled, a container the
//! runtime cannot create, a crash loop. Read from the pods' container statuses (pure); the machine
//! aborts the rollout when one stays so for longer than the grace.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use crate::reason::Reason;

/// What kind of trouble a waiting reason means, as the rollout reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trouble {
    ImagePull,
    CannotStart,
    CrashLoop,
}

impl Trouble {
    /// The kubelet's waiting reasons that a container does not leave without a change of spec,
    /// image or configuration. `ContainerCreating` and `PodInitializing` are normal starts.
    pub fn of_waiting_reason(reason: &str) -> Option<Self> {
        match reason {
            "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" | "ErrImageNeverPull" => {
                Some(Self::ImagePull)
            }
            "CreateContainerConfigError" | "CreateContainerError" | "RunContainerError" => {
                Some(Self::CannotStart)
            }
            "CrashLoopBackOff" => Some(Self::CrashLoop),
            _ => None,
        }
    }

    /// The rollout's reason when this trouble aborts it.
    pub fn rollout_reason(self) -> Reason {
        match self {
            Self::ImagePull => Reason::ImagePullFailed,
            Self::CannotStart => Reason::ContainerCannotStart,
            Self::CrashLoop => Reason::ContainerCrashLooping,
        }
    }

    fn words(self) -> &'static str {
        match self {
            Self::ImagePull => "cannot pull its image",
            Self::CannotStart => "cannot be started",
            Self::CrashLoop => "keeps crashing",
        }
    }
}

/// One container waiting in trouble.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StuckContainer {
    pub pod: String,
    pub container: String,
    pub image: String,
    pub waiting_reason: String,
    pub message: String,
    pub trouble: Trouble,
}

impl StuckContainer {
    /// The same container in the same kind of trouble (ErrImagePull and ImagePullBackOff take
    /// turns while the kubelet retries: one trouble).
    pub fn same_as(&self, pod: &str, container: &str, waiting_reason: &str) -> bool {
        self.pod == pod
            && self.container == container
            && Trouble::of_waiting_reason(waiting_reason) == Some(self.trouble)
    }

    /// How the abort message names it.
    pub fn describe(&self) -> String {
        let message = if self.message.is_empty() {
            String::new()
        } else {
            format!(": {}", self.message)
        };
        format!(
            "container {} of pod {} {} (image {}; {}{message})",
            self.container,
            self.pod,
            self.trouble.words(),
            self.image,
            self.waiting_reason
        )
    }
}

fn stuck_in(pod: &str, statuses: Option<&Vec<ContainerStatus>>) -> Vec<StuckContainer> {
    statuses
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let waiting = c.state.as_ref()?.waiting.as_ref()?;
            let reason = waiting.reason.clone()?;
            let trouble = Trouble::of_waiting_reason(&reason)?;
            Some(StuckContainer {
                pod: pod.to_owned(),
                container: c.name.clone(),
                image: c.image.clone(),
                waiting_reason: reason,
                message: waiting.message.clone().unwrap_or_default(),
                trouble,
            })
        })
        .collect()
}

/// The containers of `pods` waiting in trouble, init containers first, pods in name order; pods
/// being deleted do not count.
pub fn stuck_containers(pods: &[Pod]) -> Vec<StuckContainer> {
    let mut live: Vec<&Pod> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    live.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    live.into_iter()
        .flat_map(|p| {
            let name = p.metadata.name.clone().unwrap_or_default();
            let status = p.status.as_ref();
            let mut stuck = stuck_in(
                &name,
                status.and_then(|s| s.init_container_statuses.as_ref()),
            );
            stuck.extend(stuck_in(
                &name,
                status.and_then(|s| s.container_statuses.as_ref()),
            ));
            stuck
        })
        .collect()
}

/// Pods of a color that run a release: the first container's image and the configuration
/// revision their template carried (other pods on the color belong to an older release).
pub fn runs_release(pod: &Pod, image: &str, config: &str) -> bool {
    let pod_image = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.as_deref());
    let pod_config = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(crate::crd::annotations::RELEASE_CONFIG))
        .map_or("", String::as_str);
    pod_image == Some(image) && (config.is_empty() || pod_config == config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, statuses: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "annotations": {"footballprediction.io/release-config": "c1"}},
            "spec": {"containers": [{"name": "api", "image": "reg.test/fp:2"}]},
            "status": statuses,
        }))
        .unwrap()
    }

    fn waiting(name: &str, reason: &str, message: &str) -> serde_json::Value {
        json!({"name": name, "image": "reg.test/fp:2", "imageID": "", "ready": false,
               "restartCount": 0, "state": {"waiting": {"reason": reason, "message": message}}})
    }

    #[test]
    fn every_waiting_reason_that_needs_a_change_is_trouble_and_normal_starts_are_not() {
        for (reason, trouble) in [
            ("ErrImagePull", Some(Trouble::ImagePull)),
            ("ImagePullBackOff", Some(Trouble::ImagePull)),
            ("InvalidImageName", Some(Trouble::ImagePull)),
            ("CreateContainerConfigError", Some(Trouble::CannotStart)),
            ("CreateContainerError", Some(Trouble::CannotStart)),
            ("RunContainerError", Some(Trouble::CannotStart)),
            ("CrashLoopBackOff", Some(Trouble::CrashLoop)),
            ("ContainerCreating", None),
            ("PodInitializing", None),
            ("", None),
        ] {
            assert_eq!(Trouble::of_waiting_reason(reason), trouble, "{reason}");
        }
    }

    #[test]
    fn stuck_containers_come_from_init_and_app_containers_of_live_pods() {
        let pulling = pod(
            "b-pod",
            json!({"containerStatuses": [waiting("api", "ImagePullBackOff", "Back-off pulling image")]}),
        );
        let init = pod(
            "a-pod",
            json!({"initContainerStatuses": [waiting("wait-db", "CreateContainerConfigError", "secret \"db\" not found")],
                   "containerStatuses": [waiting("api", "PodInitializing", "")]}),
        );
        let mut leaving = pod(
            "c-pod",
            json!({"containerStatuses": [waiting("api", "ErrImagePull", "")]}),
        );
        leaving.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        let running = pod(
            "d-pod",
            json!({"containerStatuses": [{"name": "api", "image": "reg.test/fp:2", "imageID": "",
                   "ready": true, "restartCount": 0, "state": {"running": {}}}]}),
        );
        let stuck = stuck_containers(&[pulling, init, leaving, running]);
        let seen: Vec<(&str, &str, Trouble)> = stuck
            .iter()
            .map(|s| (s.pod.as_str(), s.container.as_str(), s.trouble))
            .collect();
        assert_eq!(
            seen,
            [
                ("a-pod", "wait-db", Trouble::CannotStart),
                ("b-pod", "api", Trouble::ImagePull)
            ]
        );
        assert_eq!(
            stuck[1].describe(),
            "container api of pod b-pod cannot pull its image (image reg.test/fp:2; ImagePullBackOff: Back-off pulling image)"
        );
    }

    #[test]
    fn pull_errors_that_take_turns_are_one_trouble_but_a_crash_after_a_pull_is_another() {
        let stuck = &stuck_containers(&[pod(
            "p",
            json!({"containerStatuses": [waiting("api", "ErrImagePull", "")]}),
        )])[0];
        assert!(stuck.same_as("p", "api", "ImagePullBackOff"));
        assert!(!stuck.same_as("p", "api", "CrashLoopBackOff"));
        assert!(!stuck.same_as("q", "api", "ErrImagePull"));
    }

    #[test]
    fn only_pods_of_the_release_count() {
        let p = pod("p", json!({}));
        assert!(runs_release(&p, "reg.test/fp:2", "c1"));
        assert!(runs_release(&p, "reg.test/fp:2", ""));
        assert!(!runs_release(&p, "reg.test/fp:1", "c1"));
        assert!(!runs_release(&p, "reg.test/fp:2", "c0"));
    }
}
