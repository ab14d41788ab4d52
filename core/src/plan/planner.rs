//! Runs the planner model and turns its streamed output into subtasks as they complete.

use std::collections::VecDeque;
use std::sync::Arc;

use futures::stream::{BoxStream, StreamExt};
use serde::{Deserialize, Serialize};

use super::parse::{ParseError, PlanStreamParser};
use super::prompt::planning_messages;
use super::schema::{plan_schema, Plan, Subtask};
use super::validate::{validate, Diagnostic, ValidatedPlan};
use crate::model::{ChatModel, ChatRequest, StreamEvent, TokenStream, Usage};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannerConfig {
    pub max_subtasks: usize,
    /// Generous: a plan cut by the limit loses its last subtask.
    pub max_tokens: u32,
    /// Queries of at most this many words are answered directly, without a planning call.
    pub direct_max_words: usize,
}

impl Default for PlannerConfig {
    fn default() -> Self {
        Self { max_subtasks: 6, max_tokens: 768, direct_max_words: 8 }
    }
}

/// Why a query is answered in one step instead of by a plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum DirectReason {
    /// Decomposition is off: every query is answered in one step (no planning call was made).
    DecompositionOff,
    /// Short enough not to need a plan (no planning call was made).
    ShortQuery,
    /// The router predicts no gain from a plan for this query (`Decomposition::WhenItPays`; no
    /// planning call was made), with its numbers.
    NotWorthDecomposing { why: String },
    /// The planner itself answered with a single subtask.
    SingleStep,
    /// The planner failed; the query is answered directly instead.
    PlannerFailed { error: String },
    /// The planner's output held no usable subtask.
    UnusablePlan { error: String, diagnostics: Vec<Diagnostic> },
}

/// Outcome of planning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanOutcome {
    pub plan: ValidatedPlan,
    /// Set when the plan is a single direct step, with why.
    pub direct: Option<DirectReason>,
}

/// What the planner stream yields.
#[derive(Debug)]
pub enum PlanEvent {
    /// A subtask whose JSON object is complete (not validated yet).
    Subtask(Subtask),
    /// Planning is over.
    Done { outcome: PlanOutcome, usage: Option<Usage> },
}

/// The plan that answers `query` in one step.
pub fn direct_plan(query: &str) -> ValidatedPlan {
    ValidatedPlan { subtasks: vec![Subtask::new("answer", query, &[])], diagnostics: Vec::new() }
}

pub fn needs_planning(query: &str, config: &PlannerConfig) -> bool {
    query.split_whitespace().count() > config.direct_max_words
}

fn finish(query: &str, parsed: Result<Plan, ParseError>, max_subtasks: usize) -> PlanOutcome {
    let direct = |reason| PlanOutcome { plan: direct_plan(query), direct: Some(reason) };
    match parsed.map(|plan| validate(plan, max_subtasks)) {
        Err(e) => direct(DirectReason::UnusablePlan { error: e.to_string(), diagnostics: Vec::new() }),
        Ok(Err(rejected)) => direct(DirectReason::UnusablePlan { error: rejected.to_string(), diagnostics: rejected.diagnostics }),
        Ok(Ok(plan)) if plan.is_direct() => PlanOutcome { plan, direct: Some(DirectReason::SingleStep) },
        Ok(Ok(plan)) => PlanOutcome { plan, direct: None },
    }
}

struct Planning {
    query: String,
    max_subtasks: usize,
    /// The request, until it is sent.
    pending_request: Option<ChatRequest>,
    /// Held while the plan streams: an engine dropped mid-stream ends its generation.
    model: Arc<dyn ChatModel>,
    tokens: Option<TokenStream>,
    parser: PlanStreamParser,
    queued: VecDeque<Subtask>,
    done: bool,
}

impl Planning {
    fn fail(&mut self, error: String) -> PlanEvent {
        self.done = true;
        self.tokens = None;
        let outcome = PlanOutcome { plan: direct_plan(&self.query), direct: Some(DirectReason::PlannerFailed { error }) };
        PlanEvent::Done { outcome, usage: None }
    }
}

/// Streams the plan for `query` from `model`: subtasks as soon as each is complete, then `Done`.
/// Planner failures end in a direct plan with the reason, never in an error. Dropping the stream
/// cancels the planner's generation.
/// The planning request for `query` (what [`stream_plan`] sends).
pub fn plan_request(query: &str, config: &PlannerConfig) -> ChatRequest {
    ChatRequest::new(planning_messages(query, config.max_subtasks))
        .with_max_tokens(config.max_tokens)
        .with_json_schema(plan_schema(config.max_subtasks))
}

pub fn stream_plan(model: Arc<dyn ChatModel>, query: &str, config: &PlannerConfig) -> BoxStream<'static, PlanEvent> {
    let request = plan_request(query, config);
    let planning = Planning {
        query: query.to_owned(),
        max_subtasks: config.max_subtasks,
        pending_request: Some(request),
        model,
        tokens: None,
        parser: PlanStreamParser::default(),
        queued: VecDeque::new(),
        done: false,
    };
    futures::stream::unfold(planning, next_plan_event).boxed()
}

async fn next_plan_event(mut planning: Planning) -> Option<(PlanEvent, Planning)> {
    loop {
        if let Some(subtask) = planning.queued.pop_front() {
            return Some((PlanEvent::Subtask(subtask), planning));
        }
        if planning.done {
            return None;
        }
        if let Some(request) = planning.pending_request.take() {
            match planning.model.stream(request).await {
                Ok(tokens) => planning.tokens = Some(tokens),
                Err(e) => {
                    let event = planning.fail(e.to_string());
                    return Some((event, planning));
                }
            }
        }
        let tokens = planning.tokens.as_mut().expect("started above");
        match tokens.next().await {
            Some(Ok(StreamEvent::Delta(text))) => planning.queued.extend(planning.parser.push(&text)),
            Some(Ok(StreamEvent::Finished(usage))) => {
                planning.done = true;
                planning.tokens = None;
                let parser = std::mem::take(&mut planning.parser);
                let outcome = finish(&planning.query, parser.finish(), planning.max_subtasks);
                return Some((PlanEvent::Done { outcome, usage: Some(usage) }, planning));
            }
            Some(Err(e)) => {
                let event = planning.fail(e.to_string());
                return Some((event, planning));
            }
            None => {
                let event = planning.fail("the planner stream ended without a usage record".into());
                return Some((event, planning));
            }
        }
    }
}
