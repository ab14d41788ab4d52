//! THE SAME HARNESS AS tests/tests/guarantees.rs, adapted to the API of commit 202c566 (before the
//! cloud guard): it measures how often that code broke the guarantees. Not part of the test suite;
//! run by scripts/guarantees-before-fix.sh in a worktree of that commit, as a crate of its own on
//! the core without the edge engine (the edge here is a double). Differences: the policy
//! and device state reach only the learned router (the baselines have no gates, as then), spending
//! is counted by the router or `Accounted`, and the old store has no usage log, so "recorded equals
//! served" compares request counts only.
//!
//! The SDK's guarantees, checked on generated cases: random plans × random device, policy and
//! budget states × every routing policy × injected faults (the edge failing on chosen steps, cloud
//! 5xx, cut streams, hangs). The edge is a double that fails on command; the cloud is the real
//! cloud client talking HTTP to a counting loopback listener; budgets live in a real sled store.
//!
//! Properties, for every case:
//! - no connection reaches the listener when a gate forbids the cloud for the query;
//! - recorded spending never exceeds a hard limit (per query, per day; tokens and money), with up
//!   to 8 steps in parallel;
//! - recorded spending equals what the listener served: one record per answered request, the
//!   served completion tokens exactly (cut streams included), the reported prompt tokens exactly
//!   for complete streams;
//! - every query ends, with an answer or a typed error.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::StreamExt;
use hybridflow_core::device::{AppPolicy, DeviceState, Network, Offload};
use hybridflow_core::exec::{EventSink, ExecConfig, Models, PlannerChoice, Scheduler};
use hybridflow_core::model::cloud::{CloudConfig, CloudModel, Price};
use hybridflow_core::model::{CancelHandle, ChatModel, ChatRequest, FinishReason, ModelError, Side, StreamEvent, TokenCount, TokenStream, Usage};
use hybridflow_core::plan::{Subtask, ValidatedPlan};
use hybridflow_core::route::router::{Budgets, LearnedRouter, Limits, RouterConfig};
use hybridflow_core::route::{Accounted, ByDifficulty, Fixed, RoutePolicy};
use hybridflow_core::store::{now_unix_seconds, Store, Window};

fn scratch_dir(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("hybridflow-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const CASES: u64 = 500;
const PRICE: Price = Price { input_per_million: 1.0, output_per_million: 2.0 };

/// A small deterministic generator (xorshift), so a failing case can be replayed by its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    Complete { deltas: u32 },
    Cut { deltas: u32 },
    ServerError,
    /// Reads the request and never answers (the client's deadline ends it).
    Hang,
}

/// What the listener saw and served.
#[derive(Default)]
struct Served {
    connections: AtomicU64,
    /// Requests answered with status 200 (the provider bills them).
    answered: AtomicU64,
    completion_tokens: AtomicU64,
    /// Prompt tokens reported in the usage of complete streams.
    reported_prompt_tokens: AtomicU64,
}

/// The counting cloud: each request gets the next fault from `faults`.
async fn start_cloud(faults: Arc<Mutex<Rng>>, fault_mix: [u64; 4]) -> (String, Arc<Served>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let served = Arc::new(Served::default());
    let counters = served.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            counters.connections.fetch_add(1, Ordering::SeqCst);
            let fault = {
                let mut rng = faults.lock().unwrap();
                let roll = rng.below(100);
                let deltas = 1 + rng.below(5) as u32;
                match roll {
                    r if r < fault_mix[0] => Fault::Complete { deltas },
                    r if r < fault_mix[1] => Fault::Cut { deltas: deltas - 1 },
                    r if r < fault_mix[2] => Fault::ServerError,
                    _ => Fault::Hang,
                }
            };
            let counters = counters.clone();
            tokio::spawn(async move {
                let Some(body_len) = read_request(&mut socket).await else { return };
                let header = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";
                let delta = |i: u32| format!("data: {}\n\n", serde_json::json!({"choices": [{"index": 0, "delta": {"content": format!("r{i} ")}, "finish_reason": null}]}));
                match fault {
                    Fault::Complete { deltas } => {
                        let prompt = (body_len / 4) as u64;
                        let mut out = header.to_string();
                        (0..deltas).for_each(|i| out += &delta(i));
                        out += &format!("data: {}\n\n", serde_json::json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}));
                        out += &format!("data: {}\n\n", serde_json::json!({"choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": deltas, "total_tokens": prompt + u64::from(deltas)}}));
                        out += "data: [DONE]\n\n";
                        counters.answered.fetch_add(1, Ordering::SeqCst);
                        counters.completion_tokens.fetch_add(u64::from(deltas), Ordering::SeqCst);
                        counters.reported_prompt_tokens.fetch_add(prompt, Ordering::SeqCst);
                        let _ = socket.write_all(out.as_bytes()).await;
                    }
                    Fault::Cut { deltas } => {
                        let mut out = header.to_string();
                        (0..deltas).for_each(|i| out += &delta(i));
                        counters.answered.fetch_add(1, Ordering::SeqCst);
                        counters.completion_tokens.fetch_add(u64::from(deltas), Ordering::SeqCst);
                        let _ = socket.write_all(out.as_bytes()).await;
                    }
                    Fault::ServerError => {
                        let _ = socket.write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}").await;
                    }
                    Fault::Hang => tokio::time::sleep(Duration::from_secs(30)).await,
                }
                let _ = socket.shutdown().await;
            });
        }
    });
    (url, served, task)
}

/// Reads one HTTP request; returns its body length.
async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<usize> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).to_lowercase();
            let length: usize = head.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
            while buffer.len() < end + 4 + length {
                let n = socket.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buffer.extend_from_slice(&chunk[..n]);
            }
            return Some(length);
        }
    }
}

/// The edge double: answers every step at once, fails the steps it is told to, writes `plan` when
/// asked to plan.
struct Edge {
    failing: Vec<String>,
    fail_all: bool,
    plan: String,
}

impl ChatModel for Edge {
    fn side(&self) -> Side {
        Side::Edge
    }
    fn name(&self) -> &str {
        "edge double"
    }
    fn stream(&self, request: ChatRequest) -> BoxFuture<'_, Result<TokenStream, ModelError>> {
        Box::pin(async move {
            let prompt = request.messages.last().map(|m| m.content.clone()).unwrap_or_default();
            if self.fail_all || self.failing.iter().any(|task| prompt.contains(task.as_str())) {
                return Err(ModelError::Engine("edge failure on command".into()));
            }
            let text = if request.json_schema.is_some() { self.plan.clone() } else { "edge result 7".to_string() };
            let usage = Usage { prompt_tokens: 10, completion_tokens: 3, token_count: TokenCount::Reported, time_to_first_token: None, total_time: Duration::from_millis(1), decode_tokens_per_second: 0.0, finish_reason: FinishReason::Stop };
            let events = futures::stream::iter([Ok(StreamEvent::Delta(text)), Ok(StreamEvent::Finished(usage))]);
            Ok(TokenStream::new(events.boxed(), CancelHandle::default()))
        })
    }
}

fn random_plan(rng: &mut Rng) -> ValidatedPlan {
    let n = 1 + rng.below(8) as usize;
    let mut subtasks = Vec::new();
    for i in 0..n {
        let deps: Vec<String> = (0..i).filter(|_| rng.chance(25)).map(|d| format!("s{d}")).collect();
        let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
        let mut subtask = Subtask::new(&format!("s{i}"), &format!("task number {i}: compute part {i} of the question"), &deps);
        subtask.difficulty = [hybridflow_core::plan::Difficulty::Easy, hybridflow_core::plan::Difficulty::Medium, hybridflow_core::plan::Difficulty::Hard][rng.below(3) as usize];
        subtasks.push(subtask);
    }
    ValidatedPlan { subtasks, diagnostics: Vec::new() }
}

fn plan_json(plan: &ValidatedPlan) -> String {
    let items: Vec<serde_json::Value> = plan
        .subtasks
        .iter()
        .map(|s| serde_json::json!({"id": s.id, "task": s.task, "depends_on": s.depends_on, "kind": "math", "difficulty": "hard", "expected_tokens": 20}))
        .collect();
    serde_json::json!({"subtasks": items}).to_string()
}

fn optional(rng: &mut Rng, percent: u64, value: u64) -> Option<u64> {
    rng.chance(percent).then_some(value)
}

#[derive(Debug, Default)]
struct Tally {
    cases: u64,
    violations: Vec<String>,
    gated_cases: u64,
    limited_cases: u64,
    cloud_requests: u64,
    answered: u64,
    typed_errors: u64,
    max_limit_use: f64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_cases_never_break_a_guarantee() {
    let cases: u64 = std::env::var("HYBRIDFLOW_GUARANTEE_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(CASES);
    let dir = scratch_dir("guarantees");
    let mut tally = Tally::default();
    for case in 0..cases {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (case + 1).wrapping_mul(0x2545_f491_4f6c_dd1d));
        let faults = Arc::new(Mutex::new(Rng(rng.next() | 1)));
        let ok_share = 40 + rng.below(60);
        let mix = [ok_share, ok_share + (100 - ok_share) / 2, ok_share + (100 - ok_share) * 5 / 6, 100];
        let (url, served, server) = start_cloud(faults, mix).await;

        // Device and policy.
        let device = DeviceState {
            network: [Network::Wifi, Network::Wifi, Network::Cellular, Network::Metered, Network::None][rng.below(5) as usize],
            data_saver: rng.chance(15),
            battery_level: if rng.chance(15) { 0.05 } else { 0.8 },
            charging: rng.chance(50),
            low_power_mode: rng.chance(10),
            ..DeviceState::default()
        };
        let policy = AppPolicy {
            offload: [Offload::Allowed, Offload::Allowed, Offload::WifiOnly, Offload::Never][rng.below(4) as usize],
            calibration_probe_rate: [0.0, 0.5, 1.0][rng.below(3) as usize],
            ..AppPolicy::default()
        };
        let personal = rng.chance(15);
        let query = if personal {
            "Mail the result to ada@example.com: a shop sells pens at 2 dollars and notebooks at 5 dollars; what do 3 pens and 2 notebooks cost?"
        } else {
            "A shop sells pens at 2 dollars and notebooks at 5 dollars; what do 3 pens and 2 notebooks cost, and what change from 50 dollars?"
        };
        let cloud_forbidden = policy.offload == Offload::Never
            || device.network == Network::None
            || (policy.offload == Offload::WifiOnly && device.network != Network::Wifi)
            || (device.data_saver && device.network != Network::Wifi)
            || (!device.charging && device.battery_level < policy.min_battery_for_cloud)
            || (device.low_power_mode && !device.charging)
            || personal;

        // Budgets (hard limits).
        let (query_tokens, day_tokens, day_money) = (300 + rng.below(3_000), 300 + rng.below(4_000), 0.0005 + rng.below(40) as f64 * 0.0001);
        let budgets = Budgets {
            per_query: Limits { cloud_tokens: optional(&mut rng, 40, query_tokens), ..Limits::default() },
            per_day: Limits { cloud_tokens: optional(&mut rng, 30, day_tokens), money: rng.chance(30).then_some(day_money), ..Limits::default() },
            ..Budgets::default()
        };
        let limited = budgets != Budgets::default();

        // Models, routing, scheduler.
        let plan = random_plan(&mut rng);
        let fail_all = rng.chance(15);
        let failing: Vec<String> = plan.subtasks.iter().filter(|_| rng.chance(30)).map(|s| s.task.clone()).collect();
        let edge = Arc::new(Edge { failing, fail_all, plan: plan_json(&plan) });
        let mut cloud_config = CloudConfig::new(&url, "counting");
        cloud_config.price = PRICE;
        cloud_config.timeouts.total = Duration::from_millis(600);
        cloud_config.timeouts.first_token = Duration::from_millis(300);
        cloud_config.retry.max_attempts = 2;
        cloud_config.retry.base_delay = Duration::from_millis(5);
        cloud_config.retry.max_delay = Duration::from_millis(10);
        cloud_config.breaker.failure_threshold = 1_000;
        let cloud = CloudModel::new(cloud_config).unwrap();
        let store_dir = dir.join(format!("case-{case}"));
        let store = Arc::new(Store::open(&store_dir).unwrap());
        let routing = rng.below(4);
        let route: Arc<dyn RoutePolicy> = match routing {
            0 => {
                let router = LearnedRouter::new(RouterConfig { budgets, price: PRICE, ..RouterConfig::default() }, Some(store.clone()), Some(cloud.breaker()));
                router.set_device_state(device);
                router.set_policy(policy);
                Arc::new(router)
            }
            1 => Arc::new(Accounted { policy: ByDifficulty, store: store.clone() }),
            2 => Arc::new(Accounted { policy: Fixed(Side::Cloud), store: store.clone() }),
            _ => Arc::new(Accounted { policy: Fixed(Side::Edge), store: store.clone() }),
        };
        let planned = rng.chance(30);
        let config = ExecConfig { planner: PlannerChoice::Routed, max_cloud_requests: 8, max_edge_generations: 8, ..ExecConfig::default() };
        let scheduler = Scheduler::new(Models { edge: Some(edge), cloud: Some(Arc::new(cloud)) }, route, config).unwrap();

        let (sink, _events) = EventSink::channel();
        let cancel = CancellationToken::new();
        let run = async {
            if planned {
                scheduler.run(query, &sink, &cancel).await
            } else {
                scheduler.run_plan(query, plan.clone(), &sink, &cancel).await
            }
        };
        let outcome = tokio::time::timeout(Duration::from_secs(60), run).await;
        // Calibration probes run in the background (this version cannot wait for them).
        tokio::time::sleep(Duration::from_millis(800)).await;

        let label = format!("case {case} (routing {routing}, planned {planned}, device {device:?}, policy {policy:?}, personal {personal}, budgets {budgets:?})");
        match outcome {
            Err(_) => tally.violations.push(format!("{label}: the query did not end within 60 s")),
            Ok(Ok(_)) => tally.answered += 1,
            Ok(Err(_)) => tally.typed_errors += 1,
        }
        let connections = served.connections.load(Ordering::SeqCst);
        if cloud_forbidden {
            tally.gated_cases += 1;
            if connections > 0 {
                tally.violations.push(format!("{label}: {connections} connection(s) although a gate forbids the cloud"));
            }
        }
        tally.cloud_requests += connections;

        let day = store.window_totals(Window::Day, now_unix_seconds()).unwrap();
        if limited {
            tally.limited_cases += 1;
        }
        for (name, limit, used) in [
            ("per-query tokens", budgets.per_query.cloud_tokens.map(|l| l as f64), day.cloud_tokens as f64),
            ("per-day tokens", budgets.per_day.cloud_tokens.map(|l| l as f64), day.cloud_tokens as f64),
            ("per-day money", budgets.per_day.money, day.cost),
        ] {
            if let Some(limit) = limit {
                tally.max_limit_use = tally.max_limit_use.max(used / limit);
                if used > limit + 1e-12 {
                    tally.violations.push(format!("{label}: {name} {used} over the limit {limit}"));
                }
            }
        }
        let answered = served.answered.load(Ordering::SeqCst);
        if day.cloud_requests != answered {
            tally.violations.push(format!("{label}: recorded {} cloud requests; the listener answered {answered}", day.cloud_requests));
        }
        tally.cases += 1;
        drop((scheduler, store));
        server.abort();
        let _ = std::fs::remove_dir_all(&store_dir);
    }
    println!(
        "guarantees: {} cases ({} with a gate closed, {} with hard limits; {} answered, {} typed errors; {} cloud connections), highest use of a hard limit {:.3}, {} violations",
        tally.cases, tally.gated_cases, tally.limited_cases, tally.answered, tally.typed_errors, tally.cloud_requests, tally.max_limit_use, tally.violations.len()
    );
    let kind = |needle: &str| tally.violations.iter().filter(|v| v.contains(needle)).count();
    println!(
        "  violations by kind: cloud used against a gate {}, hard limit exceeded {}, spending recorded differs from served {}, query did not end {}",
        kind("although a gate forbids"),
        kind("over the limit"),
        kind("recorded") + kind("the day's totals count"),
        kind("did not end")
    );
    for violation in tally.violations.iter().take(20) {
        println!("  {violation}");
    }
    assert!(tally.gated_cases > 50 && tally.limited_cases > 100 && tally.cloud_requests > 100, "the generator covers too little: {tally:?}");
    // Measurement only: the violations are the result.
    let _ = std::fs::remove_dir_all(dir);
}
