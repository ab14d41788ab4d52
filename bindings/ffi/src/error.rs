//! The one public error type. The core's errors are rich; apps need to tell apart only what they
//! would handle differently, with a readable message for the rest. Each internal error is mapped
//! here explicitly, and logged once at the level its variant calls for (a bug at error level,
//! what the user's network or account causes at warn, what the app asked for at debug).

use hybridflow_core::client::ClientError;
use hybridflow_core::exec::{ExecError, FailureCause};
use hybridflow_core::guard::Gate;
use hybridflow_core::model::cloud::CloudError;
use hybridflow_core::store::StoreError;

/// Exposed flat: in Kotlin and Swift each variant carries only its message (the `Display` text
/// below), so `e.message` / `localizedDescription` read as sentences.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, uniffi::Error)]
#[uniffi(flat_error)]
pub enum HybridFlowError {
    /// A configuration value is wrong (the message names the field), or its state directory is in
    /// use by another open client; nothing was loaded.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The query cannot be run as given (empty, or over the size limit).
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// The edge model file is missing, damaged, unsupported or too big for the memory available.
    #[error("the model could not be loaded: {0}")]
    ModelLoad(String),
    /// The cloud endpoint cannot be set up (its TLS configuration).
    #[error("the cloud is unavailable: {0}")]
    CloudUnavailable(String),
    /// The cloud rejected the API key (HTTP 401 or 403), and the edge could not answer instead.
    #[error("the cloud rejected the credentials: {0}")]
    CloudAuthentication(String),
    /// The cloud could not be reached or stopped answering, and the edge could not answer instead.
    #[error("the cloud could not be reached: {0}")]
    Network(String),
    /// A budget limit (or spending unknown after a damaged store) kept the cloud out, and the
    /// edge could not answer instead.
    #[error("the budget does not allow the cloud: {0}")]
    BudgetExhausted(String),
    /// The policy or the device's state kept the cloud out, and the edge could not answer instead.
    #[error("the cloud is not allowed now: {0}")]
    CloudNotAllowed(String),
    /// The models failed to produce an answer.
    #[error("no answer could be produced: {0}")]
    AnswerFailed(String),
    /// Too many queries are running on this client; retry when one has finished.
    #[error("busy: {0}")]
    Busy(String),
    /// The query was cancelled (its handle, coroutine or task), or the client closed under it.
    #[error("the query was cancelled")]
    Cancelled,
    /// The client was closed.
    #[error("the client is closed")]
    Closed,
    /// A bug in the SDK (a caught panic, a damaged store that could not be rebuilt).
    #[error("internal error: {0}")]
    Internal(String),
}

impl HybridFlowError {
    /// Logs the error once, at the level its variant calls for, and returns it.
    fn logged(self) -> Self {
        match &self {
            Self::Internal(_) => log::error!("{self}"),
            Self::CloudUnavailable(_) | Self::CloudAuthentication(_) | Self::Network(_) | Self::ModelLoad(_) => log::warn!("{self}"),
            _ => log::debug!("{self}"),
        }
        self
    }
}

impl From<ExecError> for HybridFlowError {
    fn from(error: ExecError) -> Self {
        let message = error.to_string();
        match error {
            ExecError::Cancelled => Self::Cancelled,
            ExecError::EmptyQuery | ExecError::QueryTooLong { .. } => Self::InvalidQuery(message),
            ExecError::NoModel => Self::InvalidConfig(message),
            ExecError::AnswerFailed { cause, reason } => match cause {
                FailureCause::CloudAuthentication => Self::CloudAuthentication(reason),
                FailureCause::Network => Self::Network(reason),
                FailureCause::CloudRefused(Gate::BudgetExhausted | Gate::SpendingUnknown) => Self::BudgetExhausted(reason),
                FailureCause::CloudRefused(_) => Self::CloudNotAllowed(reason),
                FailureCause::Model => Self::AnswerFailed(reason),
            },
            ExecError::Busy { .. } => Self::Busy(message),
        }
        .logged()
    }
}

impl From<ClientError> for HybridFlowError {
    fn from(error: ClientError) -> Self {
        let message = error.to_string();
        match error {
            ClientError::InvalidConfig(_) | ClientError::Cloud(CloudError::InvalidConfig(_)) => Self::InvalidConfig(message),
            ClientError::EdgeLoad(_) => Self::ModelLoad(message),
            ClientError::Cloud(_) => Self::CloudUnavailable(message),
            // Two clients on one state directory: the app's to fix, like any config value.
            ClientError::Store(StoreError::InUse(_)) => Self::InvalidConfig(message),
            ClientError::Store(_) => Self::Internal(message),
            ClientError::Exec(error) => return error.into(),
            ClientError::Closed => Self::Closed,
        }
        .logged()
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
