//! The one public error type. The core's errors are rich; apps need to tell apart only what they
//! would handle differently, with a message for the rest.

use hybridflow_core::client::ClientError;
use hybridflow_core::exec::ExecError;
use hybridflow_core::model::cloud::CloudError;
use hybridflow_core::store::StoreError;

#[derive(Clone, Debug, PartialEq, thiserror::Error, uniffi::Error)]
/// (Fields are `reason`, not `message`: Kotlin exceptions already have a `message`.)
pub enum HybridFlowError {
    /// A configuration value is wrong (names the field), or its state directory is in use by
    /// another open client; nothing was loaded.
    #[error("invalid configuration: {reason}")]
    InvalidConfig { reason: String },
    /// The query cannot be run as given (empty, or over the size limit).
    #[error("invalid query: {reason}")]
    InvalidQuery { reason: String },
    /// The edge model file is missing, damaged, unsupported or too big for the memory available.
    #[error("the model could not be loaded: {reason}")]
    ModelLoad { reason: String },
    /// The cloud endpoint cannot be used (TLS set-up, unreachable in a cloud-only configuration).
    #[error("the cloud is unavailable: {reason}")]
    CloudUnavailable { reason: String },
    /// Every side failed to produce an answer.
    #[error("no answer could be produced: {reason}")]
    AnswerFailed { reason: String },
    /// Too many queries are running on this client; retry when one has finished.
    #[error("busy: {reason}")]
    Busy { reason: String },
    #[error("cancelled")]
    Cancelled,
    /// The client was closed.
    #[error("the client is closed")]
    Closed,
    /// A bug in the SDK (a caught panic, a damaged store that could not be rebuilt).
    #[error("internal error: {reason}")]
    Internal { reason: String },
}

impl From<ExecError> for HybridFlowError {
    fn from(error: ExecError) -> Self {
        let message = error.to_string();
        match error {
            ExecError::Cancelled => Self::Cancelled,
            ExecError::EmptyQuery | ExecError::QueryTooLong { .. } => Self::InvalidQuery { reason: message },
            ExecError::NoModel => Self::InvalidConfig { reason: message },
            ExecError::AnswerFailed(_) => Self::AnswerFailed { reason: message },
            ExecError::Busy { .. } => Self::Busy { reason: message },
        }
    }
}

impl From<ClientError> for HybridFlowError {
    fn from(error: ClientError) -> Self {
        let message = error.to_string();
        match error {
            ClientError::InvalidConfig(_) | ClientError::Cloud(CloudError::InvalidConfig(_)) => Self::InvalidConfig { reason: message },
            ClientError::EdgeLoad(_) => Self::ModelLoad { reason: message },
            ClientError::Cloud(_) => Self::CloudUnavailable { reason: message },
            // Two clients on one state directory: the app's to fix, like any config value.
            ClientError::Store(StoreError::InUse(_)) => Self::InvalidConfig { reason: message },
            ClientError::Store(_) => Self::Internal { reason: message },
            ClientError::Exec(error) => error.into(),
            ClientError::Closed => Self::Closed,
        }
    }
}

/// A panic's payload as text (the boundary turns panics into `Internal` errors).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
