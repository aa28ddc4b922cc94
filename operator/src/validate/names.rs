//! Names of every child of a FootballPrediction, in one place so builders, apply and docs agree.

use crate::crd::Color;

/// Child names derived from the FootballPrediction's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    base: String,
}

impl Names {
    pub fn new(base: impl Into<String>) -> Self {
        Self { base: base.into() }
    }

    fn with(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.base)
    }

    /// The FootballPrediction's own name.
    pub fn base(&self) -> &str {
        &self.base
    }
    /// ServiceAccount of the API pods.
    pub fn service_account(&self) -> String {
        self.with("api")
    }
    /// ConfigMap with the API server's config.toml, one per content (named by its hash): a color
    /// keeps the file it started with while the other color rolls out a new one.
    pub fn config_map(&self, content_hash: &str) -> String {
        self.with(&format!("config-{content_hash}"))
    }
    /// Operator-generated JWT signing keys.
    pub fn jwt_secret(&self) -> String {
        self.with("jwt")
    }
    /// Operator-generated admin password.
    pub fn admin_secret(&self) -> String {
        self.with("admin")
    }
    /// Default Secret holding the database URL.
    pub fn database_secret(&self) -> String {
        self.with("database")
    }
    /// API Deployment of one color.
    pub fn deployment(&self, color: Color) -> String {
        self.with(color.as_str())
    }
    /// Service of the active color (the FootballPrediction's own name).
    pub fn active_service(&self) -> String {
        self.base.clone()
    }
    /// Service of the idle color.
    pub fn preview_service(&self) -> String {
        self.with("preview")
    }
    pub fn ingress(&self) -> String {
        self.base.clone()
    }
    pub fn certificate(&self) -> String {
        self.base.clone()
    }
    /// Default Secret of the TLS certificate.
    pub fn tls_secret(&self) -> String {
        self.with("tls")
    }
    pub fn pdb(&self) -> String {
        self.with("api")
    }
    pub fn hpa(&self) -> String {
        self.with("api")
    }
    pub fn network_policy(&self) -> String {
        self.with("api")
    }
    /// NetworkPolicy of the migration, backup and restore-drill Jobs.
    pub fn jobs_network_policy(&self) -> String {
        self.with("jobs")
    }
    /// Migration Job of one pod template (identified by a short hash of it).
    pub fn migration_job(&self, template_hash: &str) -> String {
        self.with(&format!("migrate-{template_hash}"))
    }
    /// Backup Job before the migration of one rollout (identified by a short hash of it).
    pub fn pre_migration_backup_job(&self, rollout_hash: &str) -> String {
        self.with(&format!("backup-pre-{rollout_hash}"))
    }
    pub fn backup_cronjob(&self) -> String {
        self.with("backup")
    }
    pub fn frequent_backup_cronjob(&self) -> String {
        self.with("backup-frequent")
    }
    pub fn verify_cronjob(&self) -> String {
        self.with("backup-verify")
    }
    /// Default claim of PVC backups.
    pub fn backup_pvc(&self) -> String {
        self.with("backups")
    }
    pub fn prometheus_rule(&self) -> String {
        self.base.clone()
    }
    pub fn service_monitor(&self) -> String {
        self.base.clone()
    }
    pub fn dashboard_config_map(&self) -> String {
        self.with("dashboard")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::MAX_NAME_LENGTH;

    #[test]
    fn longest_allowed_name_keeps_every_child_within_kubernetes_limits() {
        let names = Names::new("a".repeat(MAX_NAME_LENGTH));
        // CronJob names are limited to 52 characters (the Job controller appends a suffix).
        for cronjob in [
            names.backup_cronjob(),
            names.frequent_backup_cronjob(),
            names.verify_cronjob(),
        ] {
            assert!(cronjob.len() <= 52, "{cronjob} is {} long", cronjob.len());
        }
        // Services are DNS-1035 labels of at most 63 characters; Job names also label pods.
        assert!(names.preview_service().len() <= 63);
        assert!(names.migration_job("0123456789").len() <= 63);
        assert!(names.deployment(Color::Green).len() <= 63);
    }

    #[test]
    fn colors_name_their_deployments() {
        let names = Names::new("prod");
        assert_eq!(names.deployment(Color::Blue), "prod-blue");
        assert_eq!(names.deployment(Color::Green), "prod-green");
        assert_eq!(names.active_service(), "prod");
        assert_eq!(names.preview_service(), "prod-preview");
    }
}
