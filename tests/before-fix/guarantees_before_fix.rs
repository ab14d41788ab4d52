//! The guarantee harness of tests/tests/guarantees.rs on the same generated cases, adapted to the
//! API of commit 202c566 (before the cloud guard), to measure how often that code broke the
//! guarantees. Not part of the test suite: scripts/guarantees-before-fix.sh runs it in a worktree
//! of that commit, as a crate of its own on the core without the edge engine (the edge is a double),
//! with `generated_cases.rs` beside it. Differences: the policy and device state reach only the
//! learned router (the baselines had no gates then), spending is counted by the router or by
//! `Accounted`, and the old store has no usage log, so "recorded equals served" compares request
//! counts only.

mod generated_cases;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use generated_cases::{start_cloud, Case, Tally, PRICE};
use hybridflow_core::exec::{EventSink, ExecConfig, Models, PlannerChoice, Scheduler};
use hybridflow_core::model::cloud::CloudModel;
use hybridflow_core::model::Side;
use hybridflow_core::route::router::{Budgets, LearnedRouter, Limits, RouterConfig};
use hybridflow_core::route::{Accounted, ByDifficulty, Fixed, RoutePolicy};
use hybridflow_core::store::{now_unix_seconds, Store, Window};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_cases_before_the_fix() {
    let dir = std::env::temp_dir().join(format!("hybridflow-before-fix-{}", std::process::id()));
    let mut tally = Tally::default();
    for n in 0..500 {
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
        let store = Arc::new(Store::open(&store_dir).unwrap());
        let route: Arc<dyn RoutePolicy> = match case.routing {
            0 => {
                let router = LearnedRouter::new(RouterConfig { budgets, price: PRICE, ..RouterConfig::default() }, Some(store.clone()), Some(cloud.breaker()));
                router.set_device_state(case.device);
                router.set_policy(case.policy);
                Arc::new(router)
            }
            1 => Arc::new(Accounted { policy: ByDifficulty, store: store.clone() }),
            2 => Arc::new(Accounted { policy: Fixed(Side::Cloud), store: store.clone() }),
            _ => Arc::new(Accounted { policy: Fixed(Side::Edge), store: store.clone() }),
        };
        let config = ExecConfig { planner: PlannerChoice::Routed, max_cloud_requests: 8, max_edge_generations: 8, ..ExecConfig::default() };
        let scheduler = Scheduler::new(Models { edge: Some(case.edge.clone()), cloud: Some(Arc::new(cloud)) }, route, config).unwrap();

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
        // Calibration probes run in the background (this version cannot wait for them).
        tokio::time::sleep(Duration::from_millis(800)).await;

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
        let day = store.window_totals(Window::Day, now_unix_seconds()).unwrap();
        if budgets != Budgets::default() {
            tally.limited_cases += 1;
        }
        tally.check_limit(&label, "per-query tokens", case.query_tokens.map(|l| l as f64), day.cloud_tokens as f64);
        tally.check_limit(&label, "per-day tokens", case.day_tokens.map(|l| l as f64), day.cloud_tokens as f64);
        tally.check_limit(&label, "per-day money", case.day_money, day.cost);
        let answered = served.answered.load(Ordering::SeqCst);
        if day.cloud_requests != answered {
            tally.violations.push(format!("{label}: recorded {} cloud requests; the listener answered {answered}", day.cloud_requests));
        }
        tally.cases += 1;
        drop((scheduler, store));
        server.abort();
        let _ = std::fs::remove_dir_all(&store_dir);
    }
    // Measurement only: the violations are the result.
    tally.print();
    let _ = std::fs::remove_dir_all(dir);
}
