//! Router decision latency: the gates, utility and threshold for one subtask, the query-level
//! decision for a whole query, whether to plan it, and the escalation check of an edge answer (its confidence from
//! the tokens' log-probabilities, then the decision), many times each.

use std::time::Instant;

use anyhow::Result;
use hybridflow_core::guard::{CloudGuard, QueryBudget};
use hybridflow_core::plan::{Difficulty, Subtask};
use hybridflow_core::route::escalation::confidence;
use hybridflow_core::route::router::{LearnedRouter, RouterConfig};
use hybridflow_core::route::{RoutePolicy, RouteRequest, Step};

pub fn run() -> Result<()> {
    let router = LearnedRouter::new(RouterConfig::default(), CloudGuard::unlimited(true), None, None);
    let mut subtask = Subtask::new("s2", "Compute the total cost of 3 pens at $2 each and 2 notebooks at $5 each", &["s1"]);
    subtask.difficulty = Difficulty::Medium;
    let query = "A shop sells pens at $2 each and notebooks at $5 each. Tom buys 3 pens and 2 notebooks. How much does he pay in total?";
    let budget = QueryBudget::default();
    let request = RouteRequest { query, step: Step::Subtask { subtask: &subtask, plan: None }, cloud_available: true, edge_available: true, budget: &budget };
    let rounds = 100_000;
    for _ in 0..1000 {
        std::hint::black_box(router.route(&request));
    }
    let started = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(router.route(&request));
    }
    let decision_us = started.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
    println!("router: {decision_us:.2} µs per subtask decision, {rounds} decisions, no store");
    let whole_query = RouteRequest { step: Step::WholeQuery, ..request };
    let started = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(router.route(&whole_query));
    }
    let query_us = started.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
    println!("query-level decision: {query_us:.2} µs per decision, {rounds} decisions, no store");
    let started = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(router.decompose(&whole_query));
    }
    let plan_us = started.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
    println!("plan or not (the query-level decision's third option): {plan_us:.2} µs per decision, {rounds} decisions, no store");
    // A 300-token answer, about the length of the edge's chain of thought on gsm8k.
    let logprobs: Vec<f32> = (0..300).map(|i| -0.02 * (i % 7) as f32).collect();
    let started = Instant::now();
    for _ in 0..rounds {
        let confidence = confidence(std::hint::black_box(&logprobs)).unwrap_or(0.0);
        std::hint::black_box(router.route(&RouteRequest { step: Step::Escalation { confidence }, ..request }));
    }
    let escalation_us = started.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
    println!("escalation check: {escalation_us:.2} µs per check (confidence of a 300-token answer and the decision), {rounds} checks, no store");
    Ok(())
}
