//! Stage 1b, execution: the DAG scheduler and the final synthesis.
//!
//! Event-driven, no polling: one loop waits on whichever comes first, a new subtask from the
//! streaming planner or a finished subtask, and starts every subtask whose parents are all done.
//! Subtasks run as tokio tasks, edge and cloud at once, with a cap on concurrent edge generations
//! (the phone has one model). A failed subtask is retried, then re-routed to the other side, then
//! marked failed; only the subtasks that need it are skipped. Every cloud request (planning, a
//! step, an escalation, a retry, a fallback, the synthesis) is admitted by the
//! [`CloudGuard`] when it is sent: a refused request does not go, the event says which gate
//! refused, and the step continues on the edge or fails. Dropping the future of
//! [`Scheduler::run`] or cancelling its token aborts every running subtask on both sides.

pub mod events;
pub mod failure;
pub mod prompts;
mod scheduler;

pub use events::{Event, SideTotals, StepName, SubtaskOutcome, SubtaskReport, Totals};
pub use failure::{FailureCause, StepFailure};
pub use scheduler::{Answer, Decomposition, EventSink, ExecConfig, ExecError, Models, PlannerChoice, Scheduler};
