//! Generated cases for the guarantee harness (`tests/tests/guarantees.rs`; an adaptation to the
//! API before the cloud guard, `tests/before-fix/`, includes this file too): a deterministic
//! generator of device, policy, budget and plan states, an edge double that fails on command, and
//! a counting loopback cloud that injects 5xx, cut streams and hangs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::StreamExt;
use hybridflow_core::device::{AppPolicy, DeviceState, Network, Offload};
use hybridflow_core::model::cloud::{CloudConfig, Price};
use hybridflow_core::model::{CancelHandle, ChatModel, ChatRequest, FinishReason, ModelError, Side, StreamEvent, TokenCount, TokenStream, Usage};
use hybridflow_core::plan::{Subtask, ValidatedPlan};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub const PRICE: Price = Price { input_per_million: 1.0, output_per_million: 2.0 };

/// A small deterministic generator (xorshift), so a failing case can be replayed by its seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    pub fn chance(&mut self, percent: u64) -> bool {
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
pub struct Served {
    pub connections: AtomicU64,
    /// Requests answered with status 200 (the provider bills them).
    pub answered: AtomicU64,
    pub completion_tokens: AtomicU64,
    /// Prompt tokens reported in the usage of complete streams.
    pub reported_prompt_tokens: AtomicU64,
}

/// The counting cloud: each request gets the next fault from `faults`.
pub async fn start_cloud(faults: Arc<Mutex<Rng>>, fault_mix: [u64; 4]) -> (String, Arc<Served>, tokio::task::JoinHandle<()>) {
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
pub struct Edge {
    pub failing: Vec<String>,
    pub fail_all: bool,
    pub plan: String,
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
            let usage = Usage { prompt_tokens: 10, completion_tokens: 3, token_count: TokenCount::Reported, time_to_first_token: None, total_time: Duration::from_millis(1), decode_tokens_per_second: 0.0, finish_reason: FinishReason::Stop, token_logprobs: Vec::new() };
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
        let mut subtask = Subtask::new(format!("s{i}"), format!("task number {i}: compute part {i} of the question"), &deps);
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
pub struct Tally {
    pub cases: u64,
    pub violations: Vec<String>,
    pub gated_cases: u64,
    pub limited_cases: u64,
    pub cloud_requests: u64,
    pub answered: u64,
    pub typed_errors: u64,
    pub max_limit_use: f64,
}

impl Tally {
    /// Counts a used limit, and a violation if it was exceeded.
    pub fn check_limit(&mut self, label: &str, name: &str, limit: Option<f64>, used: f64) {
        if let Some(limit) = limit {
            self.max_limit_use = self.max_limit_use.max(used / limit);
            if used > limit + 1e-12 {
                self.violations.push(format!("{label}: {name} {used} over the limit {limit}"));
            }
        }
    }

    /// The summary line, the violations by kind and the first violations.
    pub fn print(&self) {
        println!(
            "guarantees: {} cases ({} with a gate closed, {} with hard limits; {} answered, {} typed errors; {} cloud connections), highest use of a hard limit {:.3}, {} violations",
            self.cases, self.gated_cases, self.limited_cases, self.answered, self.typed_errors, self.cloud_requests, self.max_limit_use, self.violations.len()
        );
        let kind = |needle: &str| self.violations.iter().filter(|v| v.contains(needle)).count();
        println!(
            "  violations by kind: cloud used against a gate {}, hard limit exceeded {}, spending recorded differs from served {}, query did not end {}",
            kind("although a gate forbids"),
            kind("over the limit"),
            kind("recorded") + kind("the day's totals count"),
            kind("did not end")
        );
        for violation in self.violations.iter().take(20) {
            println!("  {violation}");
        }
    }
}

/// One generated case: everything but the SDK objects, which each harness builds with its API.
pub struct Case {
    pub faults: Arc<Mutex<Rng>>,
    pub fault_mix: [u64; 4],
    pub device: DeviceState,
    pub policy: AppPolicy,
    pub personal: bool,
    pub query: &'static str,
    /// A gate forbids the cloud for the whole query.
    pub cloud_forbidden: bool,
    pub query_tokens: Option<u64>,
    pub day_tokens: Option<u64>,
    pub day_money: Option<f64>,
    pub plan: ValidatedPlan,
    pub edge: Arc<Edge>,
    /// 0 learned, 1 by difficulty, 2 cloud only, 3 edge only.
    pub routing: u64,
    /// Through the planner (else the plan is given).
    pub planned: bool,
}

impl Case {
    /// Case number `n`, the same on every run.
    pub fn generate(n: u64) -> Self {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (n + 1).wrapping_mul(0x2545_f491_4f6c_dd1d));
        let faults = Arc::new(Mutex::new(Rng(rng.next_u64() | 1)));
        let ok_share = 40 + rng.below(60);
        let fault_mix = [ok_share, ok_share + (100 - ok_share) / 2, ok_share + (100 - ok_share) * 5 / 6, 100];
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
        let (query_tokens, day_tokens, day_money) = (300 + rng.below(3_000), 300 + rng.below(4_000), 0.0005 + rng.below(40) as f64 * 0.0001);
        let query_tokens = optional(&mut rng, 40, query_tokens);
        let day_tokens = optional(&mut rng, 30, day_tokens);
        let day_money = rng.chance(30).then_some(day_money);
        let plan = random_plan(&mut rng);
        let fail_all = rng.chance(15);
        let failing: Vec<String> = plan.subtasks.iter().filter(|_| rng.chance(30)).map(|s| s.task.clone()).collect();
        let edge = Arc::new(Edge { failing, fail_all, plan: plan_json(&plan) });
        let routing = rng.below(4);
        let planned = rng.chance(30);
        Self { faults, fault_mix, device, policy, personal, query, cloud_forbidden, query_tokens, day_tokens, day_money, plan, edge, routing, planned }
    }

    /// The real cloud client, pointed at the counting listener, with short deadlines.
    pub fn cloud_config(url: &str) -> CloudConfig {
        let mut config = CloudConfig::new(url, "counting");
        config.price = PRICE;
        config.timeouts.total = Duration::from_millis(600);
        config.timeouts.first_token = Duration::from_millis(300);
        config.retry.max_attempts = 2;
        config.retry.base_delay = Duration::from_millis(5);
        config.retry.max_delay = Duration::from_millis(10);
        config.breaker.failure_threshold = 1_000;
        config
    }

    pub fn label(&self, n: u64) -> String {
        format!(
            "case {n} (routing {}, planned {}, device {:?}, policy {:?}, personal {}, limits query {:?} day {:?} tokens {:?} money)",
            self.routing, self.planned, self.device, self.policy, self.personal, self.query_tokens, self.day_tokens, self.day_money
        )
    }
}

