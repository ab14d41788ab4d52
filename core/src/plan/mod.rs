//! Stage 1a, planning: a query becomes a graph of subtasks.
//!
//! - [`schema`]: the plan format and its JSON schema (constrained decoding on the edge,
//!   `response_format` on the cloud);
//! - [`prompt`]: the decomposition prompt, with few-shot examples written for HybridFlow;
//! - [`parse`]: a tolerant parser for what small models write (fences, trailing text, cut JSON),
//!   incremental so subtasks can start while the plan still streams;
//! - [`validate`]: validation and minimal repair with typed diagnostics.
//! - [`planner`]: runs the planner model and yields subtasks as they arrive.

pub mod parse;
pub mod planner;
pub mod prompt;
pub mod schema;
pub mod validate;

pub use schema::{Difficulty, Plan, Subtask, SubtaskKind};
pub use validate::{Diagnostic, ValidatedPlan};
