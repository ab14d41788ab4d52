//! The cloud guard: the one place that decides whether a request may leave the device.
//!
//! Every cloud request of any kind (a routed step, an escalation, a retry, a fallback,
//! planning, synthesis), under every routing policy, is sent through [`CloudGuard::admit`] at the
//! moment it goes out. Admission evaluates the device and policy gates on the request's own text,
//! the circuit breaker, and reserves the request's worst-case cost in the [`budget::Ledger`];
//! a refusal is a typed [`Gate`]. The admitted request's stream is metered: whatever ends it
//! (completion, error, cut, cancellation) bills what was received.
//!
//! - `admission`: the guard and the metered stream of an admitted request;
//! - [`gates`]: the device and policy gates (pure);
//! - [`budget`]: limits, reservations and settlement.

mod admission;
pub mod budget;
pub mod gates;

pub use budget::{BudgetCheck, Budgets, Ledger, Limits, QueryBudget, Spend};
pub use gates::{Gate, Verdict};
pub use admission::{AdmittedCloud, CloudGuard, CloudPermit, GateView};
