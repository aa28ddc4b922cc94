//! How each command ends: a failure kind with a stable CamelCase reason (for the operator's
//! status and events) and a documented exit code (for the Job's result).

use serde::Serialize;

/// Why a command failed. `reason()` and `exit_code()` are a stable contract (docs/ops/backup.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Failure {
    /// Bad flags or URLs. Exit 2 (clap uses 2 for its own usage errors too).
    InvalidArguments,
    /// The source database could not be reached or queried. Exit 3.
    DatabaseUnavailable,
    /// pg_dump failed. Exit 3.
    DumpFailed,
    /// pg_restore failed. Exit 3.
    RestoreFailed,
    /// The storage rejected the credentials. Exit 4.
    StorageAccessDenied,
    /// Upload, download, listing or deleting failed (unreachable, timeout, I/O). Exit 4.
    StorageFailed,
    /// The uploaded dump read back differs from what was dumped. Exit 4.
    UploadVerifyFailed,
    /// Retention pruning failed (the backup itself succeeded). Exit 5.
    PruneFailed,
    /// `verify` (or `restore`'s pre-check) found the backup does not match its manifest. Exit 6.
    VerifyFailed,
    /// `restore` refused a non-empty target without --force. Exit 7.
    TargetNotEmpty,
    /// No such backup (or no complete backup for `latest`). Exit 8.
    BackupNotFound,
    /// The command's --timeout passed. Exit 9.
    DeadlineExceeded,
}

impl Failure {
    pub fn exit_code(self) -> u8 {
        match self {
            Self::InvalidArguments => 2,
            Self::DatabaseUnavailable | Self::DumpFailed | Self::RestoreFailed => 3,
            Self::StorageAccessDenied | Self::StorageFailed | Self::UploadVerifyFailed => 4,
            Self::PruneFailed => 5,
            Self::VerifyFailed => 6,
            Self::TargetNotEmpty => 7,
            Self::BackupNotFound => 8,
            Self::DeadlineExceeded => 9,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Self::InvalidArguments => "InvalidArguments",
            Self::DatabaseUnavailable => "DatabaseUnavailable",
            Self::DumpFailed => "DumpFailed",
            Self::RestoreFailed => "RestoreFailed",
            Self::StorageAccessDenied => "StorageAccessDenied",
            Self::StorageFailed => "StorageFailed",
            Self::UploadVerifyFailed => "UploadVerifyFailed",
            Self::PruneFailed => "PruneFailed",
            Self::VerifyFailed => "VerifyFailed",
            Self::TargetNotEmpty => "TargetNotEmpty",
            Self::BackupNotFound => "BackupNotFound",
            Self::DeadlineExceeded => "DeadlineExceeded",
        }
    }

    /// When several things failed, the one to report: the most fundamental (lowest code).
    pub fn worst(failures: impl IntoIterator<Item = Self>) -> Option<Self> {
        failures
            .into_iter()
            .min_by_key(|failure| failure.exit_code())
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

/// A failure with its message (already redacted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandError {
    pub failure: Failure,
    pub message: String,
}

impl CommandError {
    pub fn new(failure: Failure, message: impl std::fmt::Display) -> Self {
        Self {
            failure,
            message: super::redact::redact(&message.to_string()),
        }
    }
}

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.failure.reason(), self.message)
    }
}

impl std::error::Error for CommandError {}

impl From<super::store::StoreError> for CommandError {
    fn from(err: super::store::StoreError) -> Self {
        use super::store::StoreError;
        let failure = match &err {
            StoreError::AccessDenied { .. } => Failure::StorageAccessDenied,
            StoreError::MissingCredentials { .. } | StoreError::MissingEndpoint { .. } => {
                Failure::InvalidArguments
            }
            _ => Failure::StorageFailed,
        };
        Self::new(failure, err)
    }
}

impl From<super::postgres::PgError> for CommandError {
    fn from(err: super::postgres::PgError) -> Self {
        use super::postgres::PgError;
        let failure = match &err {
            PgError::BadUrl(_) => Failure::InvalidArguments,
            PgError::ToolFailed {
                program: "pg_restore",
                ..
            } => Failure::RestoreFailed,
            PgError::Spawn { program, .. } if program == "pg_restore" => Failure::RestoreFailed,
            PgError::ToolFailed { .. } | PgError::Spawn { .. } | PgError::Pipe(_) => {
                Failure::DumpFailed
            }
            PgError::Connect { .. } | PgError::ConnectTimeout { .. } | PgError::Query { .. } => {
                Failure::DatabaseUnavailable
            }
        };
        Self::new(failure, err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_the_documented_ones() {
        let table = [
            (Failure::InvalidArguments, 2),
            (Failure::DatabaseUnavailable, 3),
            (Failure::DumpFailed, 3),
            (Failure::RestoreFailed, 3),
            (Failure::StorageAccessDenied, 4),
            (Failure::StorageFailed, 4),
            (Failure::UploadVerifyFailed, 4),
            (Failure::PruneFailed, 5),
            (Failure::VerifyFailed, 6),
            (Failure::TargetNotEmpty, 7),
            (Failure::BackupNotFound, 8),
            (Failure::DeadlineExceeded, 9),
        ];
        for (failure, code) in table {
            assert_eq!(failure.exit_code(), code, "{failure}");
        }
    }

    #[test]
    fn worst_failure_is_the_most_fundamental() {
        assert_eq!(
            Failure::worst([Failure::PruneFailed, Failure::StorageFailed]),
            Some(Failure::StorageFailed)
        );
        assert_eq!(Failure::worst([]), None);
    }

    #[test]
    fn messages_are_redacted() {
        let err = CommandError::new(Failure::DumpFailed, "pg_dump: postgres://u:pw@h/d refused");
        assert_eq!(
            err.to_string(),
            "DumpFailed: pg_dump: postgres://u:***@h/d refused"
        );
    }
}
