//! The SDK's guarantees, checked on generated cases (`hybridflow_e2e::generated_cases`): random
//! plans × random device, policy and budget states × every routing policy × injected faults (the
//! edge failing on chosen steps, cloud 5xx, cut streams, hangs). The edge is a double that fails
//! on command; the cloud is the real cloud client talking HTTP to a counting loopback listener;
//! budgets live in a real sled store.
//!
//! Properties, for every case:
//! - no connection reaches the listener when a gate forbids the cloud for the query;
//! - recorded spending never exceeds a hard limit (per query, per day; tokens and money), with up
//!   to 8 steps in parallel;
//! - recorded spending equals what the listener served: one record per answered request, the
//!   served completion tokens exactly (cut streams included), the reported prompt tokens exactly
//!   for complete streams;
//! - every query ends, with an answer or a typed error.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hybridflow_core::exec::{Decomposition, EventSink, ExecConfig, Models, PlannerChoice, Scheduler};
use hybridflow_core::guard::{Budgets, CloudGuard, Ledger, Limits};
use hybridflow_core::model::cloud::CloudModel;
use hybridflow_core::model::Side;
use hybridflow_core::route::router::{LearnedRouter, RouterConfig};
use hybridflow_core::route::{ByDifficulty, Fixed, RoutePolicy};
use hybridflow_core::store::{now_unix_seconds, Store, StoreWriter, Window};
use hybridflow_e2e::generated_cases::{start_cloud, Case, Tally, PRICE};
use hybridflow_e2e::scratch_dir;
use tokio_util::sync::CancellationToken;

const CASES: u64 = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_cases_never_break_a_guarantee() {
    let cases: u64 = std::env::var("HYBRIDFLOW_GUARANTEE_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(CASES);
    let dir = scratch_dir("guarantees");
    let mut tally = Tally::default();
    for n in 0..cases {
        let case = Case::generate(n);
        let label = case.label(n);
        let (url, served, server) = start_cloud(case.faults.clone(), case.fault_mix).await;
        let budgets = Budgets {
            per_query: Limits { cloud_tokens: case.query_tokens, ..Limits::default() },
            per_day: Limits { cloud_tokens: case.day_tokens, money: case.day_money, ..Limits::default() },
            ..Budgets::default()
        };
        let cloud = CloudModel::new(Case::cloud_config(&url)).unwrap();
        let store_dir = dir.join(format!("case-{n}"));
        let writer = Arc::new(StoreWriter::start(Arc::new(Store::open(&store_dir).unwrap())).unwrap());
        let guard = Arc::new(CloudGuard::new(true, case.policy, Ledger::new(budgets, Some(writer.clone())), Some(cloud.breaker()), PRICE));
        guard.set_device_state(case.device);
        let route: Arc<dyn RoutePolicy> = match case.routing {
            0 => Arc::new(LearnedRouter::new(RouterConfig::default(), guard.clone(), Some(writer.clone()), Some(cloud.breaker()))),
            1 => Arc::new(ByDifficulty),
            2 => Arc::new(Fixed(Side::Cloud)),
            _ => Arc::new(Fixed(Side::Edge)),
        };
        let config = ExecConfig { decomposition: Decomposition::LongQueries, planner: PlannerChoice::Routed, max_cloud_requests: 8, max_edge_generations: 8, ..ExecConfig::default() };
        let scheduler = Scheduler::new(Models { edge: Some(case.edge.clone()), cloud: Some(Arc::new(cloud)) }, route, guard.clone(), config).unwrap();

        let (sink, _events) = EventSink::channel();
        let cancel = CancellationToken::new();
        let run = async {
            if case.planned {
                scheduler.run(case.query, &sink, &cancel).await
            } else {
                scheduler.run_plan(case.query, case.plan.clone(), &sink, &cancel).await
            }
        };
        let outcome = tokio::time::timeout(Duration::from_secs(60), run).await;
        guard.ledger().flushed().await;

        match outcome {
            Err(_) => tally.violations.push(format!("{label}: the query did not end within 60 s")),
            Ok(Ok(_)) => tally.answered += 1,
            Ok(Err(_)) => tally.typed_errors += 1,
        }
        let connections = served.connections.load(Ordering::SeqCst);
        if case.cloud_forbidden {
            tally.gated_cases += 1;
            if connections > 0 {
                tally.violations.push(format!("{label}: {connections} connection(s) although a gate forbids the cloud"));
            }
        }
        tally.cloud_requests += connections;

        let store = writer.store();
        let day = store.window_totals(Window::Day, now_unix_seconds()).unwrap();
        let log = store.usage_log().unwrap();
        if budgets != Budgets::default() {
            tally.limited_cases += 1;
        }
        tally.check_limit(&label, "per-query tokens", case.query_tokens.map(|l| l as f64), day.cloud_tokens as f64);
        tally.check_limit(&label, "per-day tokens", case.day_tokens.map(|l| l as f64), day.cloud_tokens as f64);
        tally.check_limit(&label, "per-day money", case.day_money, day.cost);
        let answered = served.answered.load(Ordering::SeqCst);
        let recorded_completion: u64 = log.iter().map(|(_, r)| r.completion_tokens).sum();
        let recorded_prompt_reported: u64 = log.iter().filter(|(_, r)| !r.estimated).map(|(_, r)| r.prompt_tokens).sum();
        let served_completion = served.completion_tokens.load(Ordering::SeqCst);
        let served_prompt = served.reported_prompt_tokens.load(Ordering::SeqCst);
        if log.len() as u64 != answered || recorded_completion != served_completion || recorded_prompt_reported != served_prompt {
            tally.violations.push(format!(
                "{label}: recorded {} requests, {recorded_completion} completion and {recorded_prompt_reported} reported prompt tokens; served {answered}, {served_completion} and {served_prompt}",
                log.len()
            ));
        }
        if day.cloud_requests != log.len() as u64 {
            tally.violations.push(format!("{label}: the day's totals count {} requests, the log {}", day.cloud_requests, log.len()));
        }
        tally.cases += 1;
        drop((scheduler, guard, writer));
        server.abort();
        let _ = std::fs::remove_dir_all(&store_dir);
    }
    tally.print();
    assert!(tally.gated_cases > 50 && tally.limited_cases > 100 && tally.cloud_requests > 100, "the generator covers too little: {tally:?}");
    assert!(tally.violations.is_empty(), "{} violations", tally.violations.len());
    let _ = std::fs::remove_dir_all(dir);
}
