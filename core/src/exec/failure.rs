//! Why a step failed, kept typed through the scheduler so that an app is told what it can act on
//! (credentials, the network, a budget) rather than only a message.

use crate::guard::Gate;
use crate::model::cloud::CloudError;
use crate::model::ModelError;

/// The cause of a failure, as far as an app can act on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureCause {
    /// The cloud rejected the credentials (HTTP 401 or 403).
    CloudAuthentication,
    /// The cloud could not be reached or stopped answering (refused, DNS, TLS, timeouts, a cut
    /// stream, the circuit breaker open after such failures).
    Network,
    /// A gate kept the cloud out (a budget, the policy, the device's state) and the edge could
    /// not do the step.
    CloudRefused(Gate),
    /// A model failed otherwise (an engine error, an HTTP error, a malformed response).
    Model,
}

impl From<&ModelError> for FailureCause {
    fn from(error: &ModelError) -> Self {
        match error {
            ModelError::Cloud { error: CloudError::Unauthorized { .. }, .. } => Self::CloudAuthentication,
            ModelError::Cloud {
                error:
                    CloudError::ConnectionRefused
                    | CloudError::Dns
                    | CloudError::Tls(_)
                    | CloudError::Connect(_)
                    | CloudError::Timeout(_)
                    | CloudError::StreamCut { .. }
                    | CloudError::CircuitOpen,
                ..
            } => Self::Network,
            _ => Self::Model,
        }
    }
}

/// A step that produced no result: every attempt's error, and the cause of the last one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepFailure {
    pub cause: FailureCause,
    /// The errors of every attempt, most recent last.
    pub message: String,
}
