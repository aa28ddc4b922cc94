//! Leader election on a coordination.k8s.io Lease, so two replicas can run safely.
//!
//! The same rules as client-go's leader election, hand-written small: a lease is expired when its
//! record has not changed for `lease_duration` as observed on this replica's own monotonic clock
//! (never by comparing clocks across machines); takeovers and renewals are conditional on the
//! resourceVersion read, so two candidates cannot both win. The leader renews every
//! `renew_interval` and gives up (the process exits) when it could not renew for `renew_deadline`.
//! On shutdown the leader releases the lease so a successor takes over at once.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("lease {namespace}/{name}: {source}")]
    Api {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// Lease settings.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// This replica's identity (pod name plus a random suffix).
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// How often the leader renews: a third of the lease, so two renewals may fail before expiry.
    pub fn renew_interval(&self) -> Duration {
        (self.lease_duration / 3).max(Duration::from_secs(1))
    }
}

/// What the last read of the lease showed, and when (local monotonic time) it last changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    pub holder: Option<String>,
    pub resource_version: Option<String>,
    pub changed_at: Instant,
}

/// What to do with the lease as read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// No lease exists: create it holding it.
    Create,
    /// We hold it: write a new renew time.
    Renew,
    /// Free or expired: take it over (conditional on the resourceVersion read).
    TakeOver,
    /// Someone else holds a live lease.
    Wait,
}

/// Decides from the lease record as read and how long ago it last changed.
pub fn decide(
    exists: bool,
    holder: Option<&str>,
    me: &str,
    unchanged_for: Duration,
    lease_duration: Duration,
) -> Decision {
    match holder {
        _ if !exists => Decision::Create,
        Some(h) if h == me => Decision::Renew,
        None | Some("") => Decision::TakeOver,
        Some(_) if unchanged_for >= lease_duration => Decision::TakeOver,
        Some(_) => Decision::Wait,
    }
}

/// The record that makes `me` the holder, keeping transitions counted.
pub fn held_by(
    me: &str,
    previous: Option<&LeaseSpec>,
    lease_duration: Duration,
    now: Timestamp,
) -> LeaseSpec {
    let previous_holder = previous.and_then(|p| p.holder_identity.as_deref());
    let same = previous_holder == Some(me);
    let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(me.to_owned()),
        lease_duration_seconds: Some(i32::try_from(lease_duration.as_secs()).unwrap_or(i32::MAX)),
        acquire_time: if same {
            previous.and_then(|p| p.acquire_time.clone())
        } else {
            Some(MicroTime(now))
        },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(
            if same || previous_holder.is_none_or(str::is_empty) && transitions == 0 {
                transitions
            } else {
                transitions + 1
            },
        ),
        ..LeaseSpec::default()
    }
}

pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
    observed: Option<Observation>,
}

impl LeaderElector {
    pub fn new(client: kube::Client, config: LeaseConfig) -> Self {
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: None,
        }
    }

    pub fn config(&self) -> &LeaseConfig {
        &self.config
    }

    fn error(&self, source: kube::Error) -> LeaderError {
        LeaderError::Api {
            namespace: self.config.namespace.clone(),
            name: self.config.name.clone(),
            source,
        }
    }

    /// One attempt to acquire or renew; `Ok(true)` when this replica holds the lease afterwards.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, LeaderError> {
        let now = Instant::now();
        let current = self
            .api
            .get_opt(&self.config.name)
            .await
            .map_err(|e| self.error(e))?;
        let holder = current
            .as_ref()
            .and_then(|l| l.spec.as_ref())
            .and_then(|s| s.holder_identity.clone());
        let resource_version = current
            .as_ref()
            .and_then(|l| l.metadata.resource_version.clone());
        let changed = self
            .observed
            .as_ref()
            .is_none_or(|o| o.resource_version != resource_version || o.holder != holder);
        if changed {
            self.observed = Some(Observation {
                holder: holder.clone(),
                resource_version: resource_version.clone(),
                changed_at: now,
            });
        }
        let unchanged_for = self
            .observed
            .as_ref()
            .map_or(Duration::ZERO, |o| now.duration_since(o.changed_at));
        let me = self.config.identity.clone();
        let decision = decide(
            current.is_some(),
            holder.as_deref(),
            &me,
            unchanged_for,
            self.config.lease_duration,
        );
        let spec = held_by(
            &me,
            current.as_ref().and_then(|l| l.spec.as_ref()),
            self.config.lease_duration,
            Timestamp::now(),
        );
        let result = match decision {
            Decision::Wait => return Ok(false),
            Decision::Create => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.config.name.clone()),
                        namespace: Some(self.config.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(spec),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            Decision::Renew | Decision::TakeOver => {
                let mut lease = current.unwrap_or_default();
                lease.spec = Some(spec);
                // replace() sends the resourceVersion read: a concurrent writer makes this a 409.
                self.api
                    .replace(&self.config.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match result {
            Ok(written) => {
                self.observed = Some(Observation {
                    holder: Some(me),
                    resource_version: written.metadata.resource_version,
                    changed_at: Instant::now(),
                });
                Ok(true)
            }
            // Lost a race with another candidate: not leader this round.
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Waits until this replica holds the lease (or `stop` fires, giving `false`).
    pub async fn acquire(&mut self, stop: &tokio::sync::watch::Receiver<bool>) -> bool {
        let mut stop = stop.clone();
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => return true,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "leader election attempt failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.retry_period) => {}
                _ = stop.wait_for(|s| *s) => return false,
            }
        }
    }

    /// Renews while leading; returns when renewal failed for longer than `renew_deadline` (lost) or
    /// `stop` fires (`true`: still held, release it).
    pub async fn hold(&mut self, stop: &tokio::sync::watch::Receiver<bool>) -> bool {
        let mut stop = stop.clone();
        let mut last_renewed = Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.config.renew_interval()) => {}
                _ = stop.wait_for(|s| *s) => return true,
            }
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renewed = Instant::now(),
                Ok(false) => {
                    tracing::error!("leader lease taken by another replica");
                    return false;
                }
                Err(e) => tracing::warn!(error = %e, "renewing the leader lease failed"),
            }
            if last_renewed.elapsed() > self.config.renew_deadline {
                tracing::error!(deadline = ?self.config.renew_deadline, "could not renew the leader lease in time");
                return false;
            }
        }
    }

    /// Gives the lease up so a successor need not wait for it to expire.
    pub async fn release(&mut self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.config.name).await else {
            return;
        };
        let ours = lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref())
            == Some(self.config.identity.as_str());
        if !ours {
            return;
        }
        if let Some(spec) = lease.spec.as_mut() {
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            spec.renew_time = Some(MicroTime(Timestamp::now()));
        }
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => tracing::info!("released the leader lease"),
            Err(e) => {
                tracing::warn!(error = %e, "releasing the leader lease failed; it expires by itself")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(15);

    #[test]
    fn decisions_follow_the_lease_record() {
        assert_eq!(
            decide(false, None, "me", Duration::ZERO, LEASE),
            Decision::Create
        );
        assert_eq!(
            decide(true, Some("me"), "me", Duration::from_secs(100), LEASE),
            Decision::Renew
        );
        assert_eq!(
            decide(true, None, "me", Duration::ZERO, LEASE),
            Decision::TakeOver
        );
        assert_eq!(
            decide(true, Some(""), "me", Duration::ZERO, LEASE),
            Decision::TakeOver
        );
        assert_eq!(
            decide(true, Some("other"), "me", Duration::from_secs(14), LEASE),
            Decision::Wait
        );
        assert_eq!(
            decide(true, Some("other"), "me", Duration::from_secs(15), LEASE),
            Decision::TakeOver
        );
    }

    #[test]
    fn holding_records_acquire_time_and_transitions() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let t1: Timestamp = "2026-01-01T00:00:05Z".parse().unwrap();
        let first = held_by("a", None, LEASE, t0);
        assert_eq!(first.holder_identity.as_deref(), Some("a"));
        assert_eq!(first.lease_duration_seconds, Some(15));
        assert_eq!(first.lease_transitions, Some(0));
        let renewed = held_by("a", Some(&first), LEASE, t1);
        assert_eq!(
            renewed.acquire_time,
            Some(MicroTime(t0)),
            "renewal keeps the acquire time"
        );
        assert_eq!(renewed.renew_time, Some(MicroTime(t1)));
        assert_eq!(renewed.lease_transitions, Some(0));
        let taken = held_by("b", Some(&renewed), LEASE, t1);
        assert_eq!(taken.acquire_time, Some(MicroTime(t1)));
        assert_eq!(taken.lease_transitions, Some(1));
    }

    #[test]
    fn renewal_leaves_room_for_failures() {
        let cfg = LeaseConfig {
            namespace: "fp-system".into(),
            name: "fp-operator".into(),
            identity: "a".into(),
            lease_duration: LEASE,
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        };
        assert_eq!(cfg.renew_interval(), Duration::from_secs(5));
    }
}
