//! Scheduler tests with a scripted model: it streams a given plan when asked to plan, and answers
//! each step after a delay, recording when each step ran. Real models are tested in `tests/`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::StreamExt;

use super::*;
use crate::model::{CancelHandle, FinishReason, GenerationClock, ModelError, TokenCount, TokenStream};
use crate::route::Fixed;

/// Answers planning requests with `plan_json` (in 5-character pieces, `piece_delay` apart) and
/// step requests with `result of <task>` after `step_delay`; steps listed in `failing` error out.
/// Asked for token log-probabilities, it reports `token_logprob` for each token.
struct ScriptedModel {
    side: Side,
    token_logprob: f32,
    plan_json: String,
    piece_delay: Duration,
    step_delay: Duration,
    failing: Vec<String>,
    log: Mutex<Vec<(String, Instant, Instant)>>,
}

impl ScriptedModel {
    fn new(side: Side, plan_json: &str, step_delay: Duration) -> Self {
        Self { side, token_logprob: -0.1, plan_json: plan_json.into(), piece_delay: Duration::ZERO, step_delay, failing: Vec::new(), log: Mutex::new(Vec::new()) }
    }

    fn runs(&self) -> Vec<(String, Instant, Instant)> {
        self.log.lock().unwrap().clone()
    }
}

fn step_of(request: &ChatRequest) -> String {
    let prompt = &request.messages.last().unwrap().content;
    match prompt.rfind("Your step: ") {
        Some(at) => prompt[at + "Your step: ".len()..].to_owned(),
        None if prompt.contains("Final answer to the question") => "synthesis".into(),
        None => format!("direct: {prompt}"),
    }
}

impl ChatModel for ScriptedModel {
    fn side(&self) -> Side {
        self.side
    }
    fn name(&self) -> &str {
        "scripted"
    }
    fn stream(&self, request: ChatRequest) -> BoxFuture<'_, Result<TokenStream, ModelError>> {
        Box::pin(async move {
            let clock = GenerationClock::start();
            let usage = clock.usage(10, 5, TokenCount::Reported, FinishReason::Stop);
            if request.json_schema.is_some() {
                let pieces: Vec<String> = self.plan_json.chars().collect::<Vec<_>>().chunks(5).map(|c| c.iter().collect()).collect();
                let delay = self.piece_delay;
                let events = futures::stream::iter(pieces)
                    .then(move |p| async move {
                        if !delay.is_zero() {
                            tokio::time::sleep(delay).await; // a zero sleep still waits a timer tick
                        }
                        Ok(StreamEvent::Delta(p))
                    })
                    .chain(futures::stream::iter([Ok(StreamEvent::Finished(usage))]));
                return Ok(TokenStream::new(events.boxed(), CancelHandle::default()));
            }
            let step = step_of(&request);
            let started = Instant::now();
            tokio::time::sleep(self.step_delay).await;
            if self.failing.contains(&step) {
                return Err(ModelError::Engine(format!("scripted failure of {step}")));
            }
            self.log.lock().unwrap().push((step.clone(), started, Instant::now()));
            let text = format!("result of {step}");
            // Every step writes 5 tokens: a smaller limit cuts it.
            let usage = if request.max_tokens < 5 { Usage { finish_reason: FinishReason::Length, ..usage } } else { usage };
            let usage = if request.token_logprobs { Usage { token_logprobs: vec![self.token_logprob; 5], ..usage } } else { usage };
            Ok(TokenStream::new(futures::stream::iter([Ok(StreamEvent::Delta(text)), Ok(StreamEvent::Finished(usage))]).boxed(), CancelHandle::default()))
        })
    }
}

fn plan_json(subtasks: &[(&str, &[&str])]) -> String {
    let items: Vec<serde_json::Value> = subtasks
        .iter()
        .map(|(id, deps)| serde_json::json!({"id": id, "task": format!("task {id}"), "depends_on": deps, "kind": "math", "difficulty": "easy", "expected_tokens": 10}))
        .collect();
    serde_json::json!({"subtasks": items}).to_string()
}

const LONG_QUERY: &str = "a question long enough to need a plan with several steps in it";

/// Decomposition on: most of these tests are about plans.
fn planned() -> ExecConfig {
    ExecConfig { decomposition: Decomposition::LongQueries, ..ExecConfig::default() }
}

fn scheduler(model: Arc<ScriptedModel>, side: Side, config: ExecConfig) -> Scheduler {
    let models = match side {
        Side::Edge => Models { edge: Some(model), cloud: None },
        Side::Cloud => Models { edge: None, cloud: Some(model) },
    };
    let guard = CloudGuard::unlimited(side == Side::Cloud);
    Scheduler::new(models, Arc::new(Fixed(side)), guard, config).unwrap()
}

async fn run(scheduler: &Scheduler, query: &str) -> (Result<Answer, ExecError>, Vec<Event>) {
    let (sink, mut rx) = EventSink::channel();
    let answer = scheduler.run(query, &sink, &CancellationToken::new()).await;
    drop(sink);
    let mut events = Vec::new();
    while let Some(event) = rx.recv().await {
        events.push(event);
    }
    (answer, events)
}

/// xorshift64*: reproducible random DAGs without another dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn random_dags_run_each_subtask_once_after_its_parents_with_independent_ones_overlapping() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for case in 0..60 {
        let n = 2 + rng.below(5) as usize; // 2..=6, the planner's limit
        let ids: Vec<String> = (1..=n).map(|i| format!("s{i}")).collect();
        let deps: Vec<Vec<&str>> = (0..n)
            .map(|i| (0..i).filter(|_| rng.below(3) == 0).map(|j| ids[j].as_str()).collect())
            .collect();
        let shape: Vec<(&str, &[&str])> = ids.iter().zip(&deps).map(|(id, d)| (id.as_str(), d.as_slice())).collect();
        let model = Arc::new(ScriptedModel::new(Side::Cloud, &plan_json(&shape), Duration::from_millis(30)));
        let (answer, events) = run(&scheduler(model.clone(), Side::Cloud, planned()), LONG_QUERY).await;
        let answer = answer.unwrap();

        let runs: HashMap<String, (Instant, Instant)> = model
            .runs()
            .into_iter()
            .filter_map(|(step, s, e)| step.strip_prefix("task ").map(|id| (id.to_owned(), (s, e))))
            .collect();
        let started = events.iter().filter(|e| matches!(e, Event::SubtaskStarted { .. })).count();
        assert_eq!(started, n, "case {case}: every subtask runs exactly once");
        assert_eq!(runs.len(), n, "case {case}");
        for (id, parents) in ids.iter().zip(&deps) {
            for parent in parents {
                assert!(runs[id].0 >= runs[*parent].1, "case {case}: {id} started before its parent {parent} ended");
            }
        }
        let roots: Vec<&String> = ids.iter().zip(&deps).filter(|(_, d)| d.is_empty()).map(|(id, _)| id).collect();
        for pair in roots.windows(2) {
            let (a, b) = (runs[pair[0]], runs[pair[1]]);
            assert!(a.0 < b.1 && b.0 < a.1, "case {case}: independent {} and {} did not overlap", pair[0], pair[1]);
        }
        assert_eq!(answer.text, if n == 1 { "result of task s1".to_string() } else { "result of synthesis".to_string() });
        assert_eq!(answer.totals.subtasks, n);
    }
}

#[tokio::test]
async fn events_arrive_in_a_valid_order() {
    let model = Arc::new(ScriptedModel::new(Side::Edge, &plan_json(&[("a", &[]), ("b", &[]), ("c", &["a", "b"])]), Duration::from_millis(5)));
    let (answer, events) = run(&scheduler(model, Side::Edge, planned()), LONG_QUERY).await;
    assert!(answer.is_ok());
    assert!(matches!(events.first(), Some(Event::PlanningStarted { side: Side::Edge, .. })), "{:?}", events.first());
    assert!(matches!(events.last(), Some(Event::Answer { .. })));
    let position = |pred: &dyn Fn(&Event) -> bool| events.iter().position(pred).unwrap();
    let started = |id: &'static str| move |e: &Event| matches!(e, Event::SubtaskStarted { id: i, .. } if i == id);
    let finished = |id: &'static str| move |e: &Event| matches!(e, Event::SubtaskFinished { id: i, .. } if i == id);
    for id in ["a", "b", "c"] {
        assert!(position(&started(id)) < position(&finished(id)));
    }
    assert!(position(&finished("a")) < position(&started("c")));
    assert!(position(&finished("b")) < position(&started("c")));
    assert!(position(&|e| matches!(e, Event::PlanReady { .. })) < position(&|e| matches!(e, Event::AnswerStarted { .. })));
    assert!(position(&finished("c")) < position(&|e| matches!(e, Event::AnswerStarted { .. })));
}

#[tokio::test]
async fn first_subtasks_start_while_the_plan_still_streams() {
    let mut model = ScriptedModel::new(Side::Cloud, &plan_json(&[("a", &[]), ("b", &["a"]), ("c", &[]), ("d", &[]), ("e", &[])]), Duration::from_millis(1));
    model.piece_delay = Duration::from_millis(4);
    let (answer, events) = run(&scheduler(Arc::new(model), Side::Cloud, planned()), LONG_QUERY).await;
    assert!(answer.is_ok());
    let first_start = events.iter().position(|e| matches!(e, Event::SubtaskStarted { .. })).unwrap();
    let plan_ready = events.iter().position(|e| matches!(e, Event::PlanReady { .. })).unwrap();
    assert!(first_start < plan_ready, "no subtask started before the plan was complete");
}

#[tokio::test]
async fn short_queries_skip_planning_and_cost_one_call() {
    let model = Arc::new(ScriptedModel::new(Side::Edge, "unused", Duration::ZERO));
    let (answer, events) = run(&scheduler(model.clone(), Side::Edge, planned()), "What is 2 + 2?").await;
    let answer = answer.unwrap();
    assert_eq!(answer.direct, Some(DirectReason::ShortQuery));
    assert!(!events.iter().any(|e| matches!(e, Event::PlanningStarted { .. })));
    assert_eq!(answer.totals.edge.calls, 1);
    assert_eq!(model.runs().len(), 1);
    // The one step is the answer: its tokens stream as the answer's, with no subtask id.
    let streamed: String = events
        .iter()
        .map(|e| match e {
            Event::Token { subtask_id: None, text } => text.as_str(),
            Event::Token { subtask_id: Some(id), .. } => panic!("a direct answer's token carries subtask id {id}"),
            _ => "",
        })
        .collect();
    assert_eq!(streamed, answer.text);
    assert!(!answer.truncated);
}

/// Records which steps it was asked to route, and keeps everything on the edge.
#[derive(Default)]
struct RecordingPolicy(Mutex<Vec<String>>);

impl RoutePolicy for RecordingPolicy {
    fn route(&self, request: &crate::route::RouteRequest<'_>) -> RouteDecision {
        let step = match request.step {
            crate::route::Step::WholeQuery => "WholeQuery",
            crate::route::Step::Escalation { .. } => "Escalation",
            crate::route::Step::Plan => "Plan",
            crate::route::Step::Subtask { .. } => "Subtask",
            crate::route::Step::Synthesis { .. } => "Synthesis",
        };
        self.0.lock().unwrap().push(step.to_owned());
        RouteDecision::new(Side::Edge, "recorded")
    }
}

#[tokio::test]
async fn by_default_a_long_query_is_answered_in_one_step_routed_as_a_whole_query() {
    let model = Arc::new(ScriptedModel::new(Side::Edge, &plan_json(&[("a", &[]), ("b", &["a"])]), Duration::ZERO));
    let policy = Arc::new(RecordingPolicy::default());
    let models = Models { edge: Some(model.clone()), cloud: None };
    let scheduler = Scheduler::new(models, policy.clone(), CloudGuard::unlimited(false), ExecConfig::default()).unwrap();
    let (answer, events) = run(&scheduler, LONG_QUERY).await;
    let answer = answer.unwrap();
    // A policy with no estimate of what a plan gains declines it.
    assert_eq!(answer.direct, Some(DirectReason::NotWorthDecomposing { why: "the routing policy has no estimate of what decomposing gains".into() }));
    assert!(!events.iter().any(|e| matches!(e, Event::PlanningStarted { .. })), "no planning call");
    assert_eq!(model.runs().len(), 1, "one model call: {:?}", model.runs());
    assert_eq!(*policy.0.lock().unwrap(), ["WholeQuery"], "the only decision is the query-level one");
    assert_eq!(answer.text, format!("result of direct: {LONG_QUERY}"));
    let served_by: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::SubtaskStarted { served_by, .. } | Event::AnswerStarted { served_by, .. } => Some(served_by.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(served_by, ["scripted"], "the event names what served the step");
}

/// Plans a query exactly when told to; every step on the edge.
struct Decides(bool);

impl RoutePolicy for Decides {
    fn route(&self, _request: &crate::route::RouteRequest<'_>) -> RouteDecision {
        RouteDecision::new(Side::Edge, "edge")
    }
    fn decompose(&self, _request: &crate::route::RouteRequest<'_>) -> crate::route::DecompositionDecision {
        crate::route::DecompositionDecision { decompose: self.0, reason: format!("told {}", self.0) }
    }
}

#[tokio::test]
async fn a_long_query_is_planned_when_the_policy_predicts_a_plan_pays_and_only_then() {
    let answer_with = |decompose: bool, decomposition: Decomposition, query: &'static str| async move {
        let model = Arc::new(ScriptedModel::new(Side::Edge, &plan_json(&[("a", &[]), ("b", &["a"])]), Duration::ZERO));
        let models = Models { edge: Some(model.clone()), cloud: None };
        let config = ExecConfig { decomposition, ..ExecConfig::default() };
        let scheduler = Scheduler::new(models, Arc::new(Decides(decompose)), CloudGuard::unlimited(false), config).unwrap();
        let (answer, events) = run(&scheduler, query).await;
        let planning = events.iter().find_map(|e| match e {
            Event::PlanningStarted { reason, .. } => Some(reason.clone()),
            _ => None,
        });
        (answer.unwrap().direct, planning)
    };
    assert_eq!(ExecConfig::default().decomposition, Decomposition::WhenItPays);
    assert_eq!(answer_with(false, Decomposition::WhenItPays, LONG_QUERY).await, (Some(DirectReason::NotWorthDecomposing { why: "told false".into() }), None));
    let (direct, planning) = answer_with(true, Decomposition::WhenItPays, LONG_QUERY).await;
    assert_eq!(direct, None, "planned");
    assert!(planning.as_deref().is_some_and(|r| r.starts_with("a plan pays (told true); planning: ")), "the event says why: {planning:?}");
    assert_eq!(answer_with(true, Decomposition::WhenItPays, "short one").await, (Some(DirectReason::ShortQuery), None));
    assert_eq!(answer_with(true, Decomposition::Never, LONG_QUERY).await, (Some(DirectReason::DecompositionOff), None));
    let (direct, planning) = answer_with(false, Decomposition::LongQueries, LONG_QUERY).await;
    assert_eq!(direct, None, "the app asked for plans");
    assert!(planning.is_some_and(|r| !r.contains("a plan pays")));
}

/// Streams part of an answer and then fails on its first call; answers in full on the next.
struct FailsMidAnswerOnce(std::sync::atomic::AtomicUsize);

impl ChatModel for FailsMidAnswerOnce {
    fn side(&self) -> Side {
        Side::Edge
    }
    fn name(&self) -> &str {
        "fails mid-answer once"
    }
    fn stream(&self, _request: ChatRequest) -> BoxFuture<'_, Result<TokenStream, ModelError>> {
        let call = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async move {
            let usage = GenerationClock::start().usage(10, 2, TokenCount::Reported, FinishReason::Stop);
            let events: Vec<Result<StreamEvent, ModelError>> = if call == 0 {
                vec![Ok(StreamEvent::Delta("The ans".into())), Err(ModelError::Engine("connection lost".into()))]
            } else {
                vec![Ok(StreamEvent::Delta("The answer ".into())), Ok(StreamEvent::Delta("is 4.".into())), Ok(StreamEvent::Finished(usage))]
            };
            Ok(TokenStream::new(futures::stream::iter(events).boxed(), CancelHandle::default()))
        })
    }
}

#[tokio::test]
async fn an_answer_attempt_that_fails_after_streaming_is_reset_before_the_retry() {
    let model = Arc::new(FailsMidAnswerOnce(Default::default()));
    let scheduler = Scheduler::new(Models { edge: Some(model), cloud: None }, Arc::new(Fixed(Side::Edge)), CloudGuard::unlimited(false), ExecConfig::default()).unwrap();
    let (answer, events) = run(&scheduler, "What is 2 + 2?").await;
    let answer = answer.unwrap();
    assert_eq!(answer.text, "The answer is 4.");
    let reset = events.iter().position(|e| matches!(e, Event::AnswerReset)).expect("an AnswerReset after the failed attempt");
    let text_of = |events: &[Event]| events.iter().filter_map(|e| match e { Event::Token { subtask_id: None, text } => Some(text.as_str()), _ => None }).collect::<String>();
    assert_eq!(text_of(&events[..reset]), "The ans", "what the failed attempt streamed");
    assert_eq!(text_of(&events[reset..]), answer.text, "after the reset, the tokens are the answer");
    assert_eq!(events.iter().filter(|e| matches!(e, Event::AnswerReset)).count(), 1);
}

#[tokio::test]
async fn an_answer_cut_by_its_token_limit_is_marked_truncated() {
    let model = Arc::new(ScriptedModel::new(Side::Edge, &plan_json(&[("a", &[]), ("b", &["a"])]), Duration::ZERO));
    let short = ExecConfig { answer_max_tokens: 4, ..planned() };
    for query in ["What is 2 + 2?", LONG_QUERY] {
        let (answer, events) = run(&scheduler(model.clone(), Side::Edge, short.clone()), query).await;
        let answer = answer.unwrap();
        assert!(answer.truncated, "{query}: the answer reached its limit");
        assert!(matches!(events.last(), Some(Event::Answer { truncated: true, .. })));
    }
    let (answer, _) = run(&scheduler(model, Side::Edge, planned()), LONG_QUERY).await;
    assert!(!answer.unwrap().truncated);
}

#[tokio::test]
async fn an_unusable_plan_falls_back_to_a_direct_answer_and_says_why() {
    let model = Arc::new(ScriptedModel::new(Side::Edge, "I cannot make a plan, sorry.", Duration::ZERO));
    let (answer, _) = run(&scheduler(model, Side::Edge, planned()), LONG_QUERY).await;
    let answer = answer.unwrap();
    assert!(matches!(answer.direct, Some(DirectReason::UnusablePlan { .. })), "{:?}", answer.direct);
    assert!(answer.text.starts_with("result of direct"));
}

#[tokio::test]
async fn a_failed_subtask_is_retried_rerouted_then_skips_only_its_dependents() {
    let plan = plan_json(&[("a", &[]), ("b", &["a"]), ("c", &[])]);
    let mut edge = ScriptedModel::new(Side::Edge, &plan, Duration::from_millis(1));
    edge.failing = vec!["task a".into()];
    let mut cloud = ScriptedModel::new(Side::Cloud, &plan, Duration::from_millis(1));
    cloud.failing = vec!["task a".into()];
    let models = Models { edge: Some(Arc::new(edge)), cloud: Some(Arc::new(cloud)) };
    let mut config = planned();
    config.planner = PlannerChoice::Edge;
    let scheduler = Scheduler::new(models, Arc::new(Fixed(Side::Edge)), CloudGuard::unlimited(true), config).unwrap();
    let (answer, events) = run(&scheduler, LONG_QUERY).await;
    let answer = answer.unwrap();
    let attempts: Vec<(Side, u32)> = events
        .iter()
        .filter_map(|e| match e { Event::SubtaskStarted { id, side, attempt, .. } if id == "a" => Some((*side, *attempt)), _ => None })
        .collect();
    assert_eq!(attempts, vec![(Side::Edge, 1), (Side::Edge, 2), (Side::Cloud, 3)]);
    let report = |id: &str| events.iter().find_map(|e| match e { Event::SubtaskFinished { id: i, report } if i == id => Some(report.clone()), _ => None }).unwrap();
    assert!(matches!(report("a").outcome, SubtaskOutcome::Failed { .. }));
    assert!(matches!(report("b").outcome, SubtaskOutcome::Skipped { ref failed_dependency } if failed_dependency == "a"));
    assert!(matches!(report("c").outcome, SubtaskOutcome::Done { .. }));
    assert_eq!(answer.totals.failed_subtasks, 2);
    assert_eq!(answer.text, "result of synthesis");
}

#[tokio::test]
async fn cancellation_stops_the_query() {
    let model = Arc::new(ScriptedModel::new(Side::Edge, &plan_json(&[("a", &[]), ("b", &["a"])]), Duration::from_secs(30)));
    let scheduler = scheduler(model.clone(), Side::Edge, planned());
    let (sink, _rx) = EventSink::channel();
    let cancel = CancellationToken::new();
    let stopper = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        stopper.cancel();
    });
    let started = Instant::now();
    assert!(matches!(scheduler.run(LONG_QUERY, &sink, &cancel).await, Err(ExecError::Cancelled)));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(model.runs().is_empty(), "the running step was aborted, not completed");
}

#[tokio::test]
async fn sequential_mode_runs_one_subtask_at_a_time() {
    let model = Arc::new(ScriptedModel::new(Side::Cloud, &plan_json(&[("a", &[]), ("b", &[]), ("c", &[])]), Duration::from_millis(20)));
    let mut config = planned();
    config.sequential = true;
    let (answer, _) = run(&scheduler(model.clone(), Side::Cloud, config), LONG_QUERY).await;
    assert!(answer.is_ok());
    let mut runs: Vec<(String, Instant, Instant)> = model.runs().into_iter().filter(|r| r.0.starts_with("task")).collect();
    runs.sort_by_key(|r| r.1);
    for pair in runs.windows(2) {
        assert!(pair[1].1 >= pair[0].2, "{} overlapped {}", pair[1].0, pair[0].0);
    }
}

#[test]
fn a_scheduler_needs_a_model() {
    assert!(matches!(Scheduler::new(Models::default(), Arc::new(Fixed(Side::Edge)), CloudGuard::unlimited(false), planned()), Err(ExecError::NoModel)));
}

#[tokio::test]
async fn empty_and_oversized_queries_get_typed_errors_before_any_model_call() {
    let model = Arc::new(ScriptedModel::new(Side::Edge, "unused", Duration::ZERO));
    let config = ExecConfig { max_query_chars: 100, ..planned() };
    let scheduler = scheduler(model.clone(), Side::Edge, config);
    let (sink, _rx) = EventSink::channel();
    let cancel = CancellationToken::new();
    assert!(matches!(scheduler.run("   ", &sink, &cancel).await, Err(ExecError::EmptyQuery)));
    let long = "why ".repeat(30);
    assert!(matches!(scheduler.run(&long, &sink, &cancel).await, Err(ExecError::QueryTooLong { chars: 119, limit: 100 })));
    assert!(model.runs().is_empty());
}

#[tokio::test]
async fn a_given_plan_runs_without_a_planning_call() {
    let model = Arc::new(ScriptedModel::new(Side::Edge, "unused", Duration::from_millis(1)));
    let plan = crate::plan::validate::validate(crate::plan::parse::parse_plan(&plan_json(&[("a", &[]), ("b", &["a"])])).unwrap(), 6).unwrap();
    let scheduler = scheduler(model.clone(), Side::Edge, planned());
    let (sink, _rx) = EventSink::channel();
    let answer = scheduler.run_plan(LONG_QUERY, plan.clone(), &sink, &CancellationToken::new()).await.unwrap();
    assert_eq!(answer.plan, plan);
    assert_eq!(answer.totals.edge.calls, 3, "two subtasks and the synthesis, no planning");
}

#[tokio::test]
async fn queries_over_the_in_flight_limit_are_refused_and_cloud_requests_are_capped() {
    let plan = plan_json(&[("a", &[]), ("b", &[]), ("c", &[]), ("d", &[])]);
    let model = Arc::new(ScriptedModel::new(Side::Cloud, &plan, Duration::from_millis(50)));
    let config = ExecConfig { max_queries_in_flight: 1, max_cloud_requests: 2, ..planned() };
    let scheduler = scheduler(model.clone(), Side::Cloud, config);
    let (first, second) = tokio::join!(run(&scheduler, LONG_QUERY), async {
        tokio::task::yield_now().await;
        run(&scheduler, LONG_QUERY).await
    });
    assert!(first.0.is_ok());
    assert!(matches!(second.0, Err(ExecError::Busy { limit: 1 })), "{:?}", second.0);
    // Four independent subtasks, two cloud slots: never more than two overlap.
    let runs = model.runs();
    for (step, start, _) in &runs {
        let overlapping = runs.iter().filter(|(_, s, e)| s <= start && start < e).count();
        assert!(overlapping <= 2, "{step}: {overlapping} cloud requests at once");
    }
    assert!(run(&scheduler, LONG_QUERY).await.0.is_ok(), "the slot is free again");
}

#[tokio::test]
async fn a_fallback_the_policy_forbids_does_not_happen() {
    let plan = plan_json(&[("a", &[]), ("b", &["a"]), ("c", &[])]);
    let mut edge = ScriptedModel::new(Side::Edge, &plan, Duration::from_millis(1));
    edge.failing = vec!["task a".into()];
    let cloud = Arc::new(ScriptedModel::new(Side::Cloud, &plan, Duration::from_millis(1)));
    let models = Models { edge: Some(Arc::new(edge)), cloud: Some(cloud.clone()) };
    let mut config = planned();
    config.planner = PlannerChoice::Edge;
    let guard = CloudGuard::unlimited(true);
    guard.set_policy(crate::device::AppPolicy { offload: crate::device::Offload::Never, ..Default::default() });
    let scheduler = Scheduler::new(models, Arc::new(Fixed(Side::Edge)), guard, config).unwrap();
    let (answer, events) = run(&scheduler, LONG_QUERY).await;
    assert!(answer.is_ok(), "answered from what exists: {answer:?}");
    assert!(cloud.runs().is_empty(), "nothing reached the cloud: {:?}", cloud.runs());
    assert!(!events.iter().any(|e| matches!(e, Event::SubtaskStarted { side: Side::Cloud, .. } | Event::AnswerStarted { side: Side::Cloud, .. })));
    let refused: Vec<&StepName> = events.iter().filter_map(|e| match e { Event::CloudRefused { step, gate: crate::guard::Gate::PolicyNeverOffload } => Some(step), _ => None }).collect();
    assert_eq!(refused, vec![&StepName::Subtask { id: "a".into() }], "the refused fallback is reported");
    let skipped = events.iter().any(|e| matches!(e, Event::SubtaskFinished { id, report } if id == "b" && matches!(report.outcome, SubtaskOutcome::Skipped { .. })));
    assert!(skipped, "its dependent is skipped");
}

/// The whole query on the edge; an escalation to the cloud below a confidence.
struct EscalatingPolicy {
    below: f64,
}

impl RoutePolicy for EscalatingPolicy {
    fn route(&self, request: &crate::route::RouteRequest<'_>) -> RouteDecision {
        match request.step {
            crate::route::Step::Escalation { confidence } if confidence < self.below => RouteDecision::new(Side::Cloud, "unsure"),
            _ => RouteDecision::new(Side::Edge, "edge first"),
        }
    }
}

/// An edge whose answers have the given confidence, a cloud, and the escalating policy.
fn escalating(edge_logprob: f32, cloud: ScriptedModel, guard: Arc<CloudGuard>) -> (Scheduler, Arc<ScriptedModel>, Arc<ScriptedModel>) {
    let mut edge = ScriptedModel::new(Side::Edge, "", Duration::from_millis(1));
    edge.token_logprob = edge_logprob;
    let (edge, cloud) = (Arc::new(edge), Arc::new(cloud));
    let models = Models { edge: Some(edge.clone()), cloud: Some(cloud.clone()) };
    let scheduler = Scheduler::new(models, Arc::new(EscalatingPolicy { below: -0.5 }), guard, ExecConfig::default()).unwrap();
    (scheduler, edge, cloud)
}

fn checked(events: &[Event]) -> Vec<(f64, bool)> {
    events.iter().filter_map(|e| match e { Event::AnswerChecked { confidence, escalated, .. } => Some((*confidence, *escalated)), _ => None }).collect()
}

/// The answer's text as a listener rebuilds it: tokens without a subtask id since the last reset.
fn streamed_answer(events: &[Event]) -> String {
    let since = events.iter().rposition(|e| matches!(e, Event::AnswerReset)).map_or(0, |i| i + 1);
    events[since..].iter().filter_map(|e| match e { Event::Token { subtask_id: None, text } => Some(text.as_str()), _ => None }).collect()
}

#[tokio::test]
async fn an_unsure_edge_answer_is_replaced_by_the_clouds() {
    let (scheduler, edge, cloud) = escalating(-1.0, ScriptedModel::new(Side::Cloud, "", Duration::from_millis(1)), CloudGuard::unlimited(true));
    let (answer, events) = run(&scheduler, "What is 6 times 7?").await;
    let answer = answer.unwrap();
    assert_eq!((edge.runs().len(), cloud.runs().len()), (1, 1), "the edge answered, then the cloud");
    let (confidence, escalated) = checked(&events)[0];
    assert!((confidence + 1.0).abs() < 1e-6 && escalated, "{:?}", checked(&events));
    let order: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::SubtaskStarted { side: Side::Edge, .. } => Some("edge"),
            Event::AnswerChecked { .. } => Some("checked"),
            Event::AnswerReset => Some("reset"),
            Event::SubtaskStarted { side: Side::Cloud, reason, attempt: 2, .. } if reason.starts_with("escalated") => Some("cloud"),
            Event::Answer { .. } => Some("answer"),
            _ => None,
        })
        .collect();
    assert_eq!(order, ["edge", "checked", "reset", "cloud", "answer"]);
    assert_eq!((answer.totals.edge.calls, answer.totals.cloud.calls), (1, 1), "both answers are paid for");
    assert_eq!(streamed_answer(&events), answer.text);
}

#[tokio::test]
async fn a_confident_edge_answer_stands() {
    let (scheduler, _, cloud) = escalating(-0.1, ScriptedModel::new(Side::Cloud, "", Duration::from_millis(1)), CloudGuard::unlimited(true));
    let (answer, events) = run(&scheduler, "What is 6 times 7?").await;
    let answer = answer.unwrap();
    assert!(cloud.runs().is_empty());
    assert_eq!(checked(&events).iter().map(|c| c.1).collect::<Vec<_>>(), [false]);
    assert!(!events.iter().any(|e| matches!(e, Event::AnswerReset)));
    assert_eq!((answer.totals.edge.calls, answer.totals.cloud.calls), (1, 0));
}

#[tokio::test]
async fn an_escalation_that_fails_or_is_refused_leaves_the_edge_answer() {
    // The cloud fails on every attempt.
    let mut failing = ScriptedModel::new(Side::Cloud, "", Duration::from_millis(1));
    failing.failing = vec!["direct: What is 6 times 7?".into()];
    let (scheduler, _, cloud) = escalating(-1.0, failing, CloudGuard::unlimited(true));
    let (answer, events) = run(&scheduler, "What is 6 times 7?").await;
    let answer = answer.unwrap();
    assert!(cloud.runs().is_empty());
    assert_eq!(answer.text, "result of direct: What is 6 times 7?");
    assert_eq!(streamed_answer(&events), answer.text, "the edge's answer is streamed again");
    assert_eq!((answer.totals.edge.calls, answer.totals.cloud.calls), (1, 0));

    // The policy forbids the cloud: the escalation is never sent.
    let guard = CloudGuard::unlimited(true);
    guard.set_policy(crate::device::AppPolicy { offload: crate::device::Offload::Never, ..Default::default() });
    let (scheduler, _, cloud) = escalating(-1.0, ScriptedModel::new(Side::Cloud, "", Duration::from_millis(1)), guard);
    let (answer, events) = run(&scheduler, "What is 6 times 7?").await;
    assert!(cloud.runs().is_empty(), "nothing reached the cloud");
    assert!(events.iter().any(|e| matches!(e, Event::CloudRefused { step: StepName::Subtask { .. }, gate: crate::guard::Gate::PolicyNeverOffload })));
    assert_eq!(streamed_answer(&events), answer.unwrap().text);
}

#[tokio::test]
async fn only_a_one_step_answer_routed_to_the_edge_is_checked() {
    // Routed to the cloud: nothing to check, and no log-probabilities asked of anyone.
    let edge = Arc::new(ScriptedModel::new(Side::Edge, "", Duration::from_millis(1)));
    let cloud = Arc::new(ScriptedModel::new(Side::Cloud, "", Duration::from_millis(1)));
    let models = Models { edge: Some(edge.clone()), cloud: Some(cloud.clone()) };
    let scheduler = Scheduler::new(models, Arc::new(Fixed(Side::Cloud)), CloudGuard::unlimited(true), ExecConfig::default()).unwrap();
    let (_, events) = run(&scheduler, "What is 6 times 7?").await;
    assert!(checked(&events).is_empty());
    // No cloud configured: nothing to escalate to.
    let (answer, events) = run(&scheduler_without_cloud(), "What is 6 times 7?").await;
    assert!(answer.is_ok() && checked(&events).is_empty());
}

fn scheduler_without_cloud() -> Scheduler {
    let edge = Arc::new(ScriptedModel::new(Side::Edge, "", Duration::from_millis(1)));
    Scheduler::new(Models { edge: Some(edge), cloud: None }, Arc::new(EscalatingPolicy { below: 0.0 }), CloudGuard::unlimited(false), ExecConfig::default()).unwrap()
}
