//! The learned router with real models and the real cloud: once a hard budget limit is reached no
//! request reaches the cloud server (its own token counters prove it), and the user still gets an
//! answer from the edge.

use std::sync::Arc;

use hybridflow_core::device::AppPolicy;
use hybridflow_core::exec::{Event, ExecConfig, Models, Scheduler};
use hybridflow_core::guard::{Budgets, CloudGuard, Gate, Ledger, Limits};
use hybridflow_core::model::cloud::Price;
use hybridflow_core::model::edge::{EdgeConfig, EdgeModel};
use hybridflow_core::model::{ChatModel, Side};
use hybridflow_core::route::router::{LearnedRouter, RouterConfig};
use hybridflow_core::store::{now_unix_seconds, Store, StoreWriter, UsageRecord};
use hybridflow_e2e::{default_edge_model, run_collecting, scratch_dir, test_cloud, test_cloud_token_counter};

const QUESTION: &str = "A shop sells pens at $2 each and notebooks at $5 each. Tom buys 3 pens and 2 notebooks. How much does he pay in total?";

async fn ask(edge: Arc<dyn ChatModel>, store: Arc<StoreWriter>) -> (String, Vec<Event>) {
    let cloud = test_cloud();
    let budgets = Budgets { per_day: Limits { money: Some(0.5), ..Limits::default() }, ..Budgets::default() };
    let price = Price { input_per_million: 0.15, output_per_million: 0.60 };
    let guard = Arc::new(CloudGuard::new(true, AppPolicy::default(), Ledger::new(budgets, Some(store.clone())), Some(cloud.breaker()), price));
    let router = LearnedRouter::new(RouterConfig::default(), guard.clone(), Some(store), Some(cloud.breaker()));
    let scheduler = Scheduler::new(Models { edge: Some(edge), cloud: Some(Arc::new(cloud)) }, Arc::new(router), guard.clone(), ExecConfig::default()).unwrap();
    let (answer, events) = run_collecting(&scheduler, QUESTION).await;
    guard.ledger().flushed().await;
    (answer.text, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_cloud_request_once_the_daily_budget_is_spent() {
    let edge: Arc<dyn ChatModel> = Arc::new(EdgeModel::load(EdgeConfig::new(default_edge_model()), |_| {}).await.unwrap());
    let dir = scratch_dir("router-budget");

    // Control: with budget left, the query-level decision sends the whole query to the cloud.
    let fresh = Arc::new(StoreWriter::start(Arc::new(Store::open(&dir.join("fresh")).unwrap())).unwrap());
    let before = test_cloud_token_counter();
    let (_, events) = ask(edge.clone(), fresh.clone()).await;
    assert!(test_cloud_token_counter() > before, "control: the cloud was used while budget remained");
    assert!(events.iter().any(|e| matches!(e, Event::SubtaskStarted { side: Side::Cloud, explanation: Some(x), .. } if x.predicted_gain > x.threshold)), "{events:?}");
    assert!(fresh.store().records() > 0, "usage recorded");

    // Spent: 0.6 of a 0.5 daily budget already recorded today.
    let spent = Store::open(&dir.join("spent")).unwrap();
    spent.record("earlier", &UsageRecord { at_unix_seconds: now_unix_seconds(), side: Side::Cloud, prompt_tokens: 1000, completion_tokens: 1000, cost: 0.6, wall_millis: 1000, estimated: false }).unwrap();
    let spent = Arc::new(StoreWriter::start(Arc::new(spent)).unwrap());
    let before = test_cloud_token_counter();
    let (answer, events) = ask(edge, spent).await;
    assert_eq!(test_cloud_token_counter(), before, "a request reached the cloud after the budget was spent");
    assert!(!answer.trim().is_empty(), "the edge still answered");
    let gated = events.iter().filter(|e| matches!(e,
        Event::SubtaskStarted { side: Side::Edge, explanation: Some(x), .. } | Event::AnswerStarted { side: Side::Edge, explanation: Some(x), .. }
        if x.gate == Some(Gate::BudgetExhausted))).count();
    assert!(gated > 0, "the events say the budget decided: {events:?}");
    drop(fresh);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Weights that answer every query on the edge first, then escalate with the given gain whatever
/// the edge's confidence (a flat curve), so the test decides the outcome, not the fitted model.
fn edge_first(escalation_gain: f64) -> RouterConfig {
    use hybridflow_core::route::escalation::{EscalationModel, Logistic};
    use hybridflow_core::route::learned::RouterWeights;
    let builtin = RouterWeights::builtin();
    // σ(b) − σ(−b) = gain for a flat curve (slope 0) with cloud bias b and edge bias −b.
    let b = ((1.0 + escalation_gain) / (1.0 - escalation_gain)).ln();
    let escalation = EscalationModel { edge_right: Logistic { bias: -b, slope: 0.0 }, cloud_right: Logistic { bias: b, slope: 0.0 }, measured_on: "test".into() };
    let whole_query = hybridflow_core::route::learned::WholeQueryGain { gain: -1.0, ..builtin.open.whole_query.clone() };
    let open = hybridflow_core::route::learned::QueryLevel { whole_query, escalation: Some(escalation), decomposition: None };
    RouterConfig { weights: RouterWeights { open, ..builtin }, ..RouterConfig::default() }
}

async fn ask_edge_first(edge: Arc<dyn ChatModel>, escalation_gain: f64) -> (hybridflow_core::exec::Answer, Vec<Event>) {
    let cloud = test_cloud();
    let guard = CloudGuard::unlimited(true);
    let router = LearnedRouter::new(edge_first(escalation_gain), guard.clone(), None, None);
    let scheduler = Scheduler::new(Models { edge: Some(edge), cloud: Some(Arc::new(cloud)) }, Arc::new(router), guard, ExecConfig::default()).unwrap();
    run_collecting(&scheduler, QUESTION).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_answer_is_checked_by_its_real_confidence_and_escalated_only_when_the_gain_clears_the_threshold() {
    let edge: Arc<dyn ChatModel> = Arc::new(EdgeModel::load(EdgeConfig::new(default_edge_model()), |_| {}).await.unwrap());
    let checked = |events: &[Event]| {
        events.iter().find_map(|e| match e {
            Event::AnswerChecked { confidence, escalated, .. } => Some((*confidence, *escalated)),
            _ => None,
        })
    };

    // Gain 0.9 > threshold: the cloud answers in place of the edge.
    let before = test_cloud_token_counter();
    let (answer, events) = ask_edge_first(edge.clone(), 0.9).await;
    assert!(test_cloud_token_counter() > before, "the escalation reached the cloud server");
    let (confidence, escalated) = checked(&events).expect("the edge's answer was checked");
    assert!(escalated && confidence.is_finite() && confidence < 0.0, "a real mean log-probability: {confidence}");
    let reset = events.iter().position(|e| matches!(e, Event::AnswerReset)).expect("the edge's streamed answer is discarded");
    assert!(events[reset..].iter().any(|e| matches!(e, Event::SubtaskStarted { side: Side::Cloud, reason, .. } if reason.starts_with("escalated"))), "{events:?}");
    assert_eq!((answer.totals.edge.calls, answer.totals.cloud.calls), (1, 1), "both answers are counted");

    // Gain 0.05 < threshold: the edge's answer stands and nothing reaches the cloud.
    let before = test_cloud_token_counter();
    let (answer, events) = ask_edge_first(edge, 0.05).await;
    assert_eq!(test_cloud_token_counter(), before, "no request reached the cloud");
    assert_eq!(checked(&events).map(|c| c.1), Some(false));
    assert!(!answer.text.trim().is_empty() && answer.totals.cloud.calls == 0);
}
