//! Faults end to end, through the SDK's entry point with the real edge model: the cloud answers
//! 500s, hangs, cuts its stream, is killed mid-query (a real llama-server), or its network goes
//! down mid-query (a real llama-server in its own network namespace). Every query still gets an
//! answer from the edge within a bounded time, the events say what happened, and the budget
//! store holds exactly the cloud usage the query reported.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hybridflow_core::client::{Client, ClientConfig, Routing};
use hybridflow_core::exec::{Answer, Event, EventSink, SubtaskOutcome};
use hybridflow_core::model::catalog;
use hybridflow_core::model::cloud::CloudConfig;
use hybridflow_core::model::edge::EdgeConfig;
use hybridflow_core::model::Side;
use hybridflow_core::store::{now_unix_seconds, Store, UsageRecord, Window};
use hybridflow_e2e::fault_server::{delta, End, FaultServer, Reply};
use hybridflow_e2e::{default_edge_model, scratch_dir};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const QUESTION: &str = "A shop sells pens at $2 each and notebooks at $5 each. Tom buys 3 pens and 2 notebooks. How much does he pay in total?";
/// Generous: the point is that a dead cloud never leaves the user without an answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(240);

fn cloud(base_url: &str) -> CloudConfig {
    let mut cloud = CloudConfig::new(base_url, "qwen2.5-coder-0.5b-instruct");
    cloud.timeouts.first_token = Duration::from_secs(3);
    cloud.timeouts.between_tokens = Duration::from_secs(3);
    cloud.timeouts.total = Duration::from_secs(20);
    cloud.retry.max_attempts = 1;
    cloud.price.input_per_million = 0.15;
    cloud.price.output_per_million = 0.60;
    cloud
}

struct Outcome {
    answer: Answer,
    events: Vec<Event>,
    elapsed: Duration,
    /// Failed cloud attempts that were billed (estimated: what they delivered).
    billed_failures: Vec<UsageRecord>,
}

/// Asks with every step routed to the cloud first; `on_event` sees each event as it comes.
async fn ask(test: &str, base_url: &str, mut on_event: impl FnMut(&Event) + Send) -> Outcome {
    let state = scratch_dir(test);
    let config = ClientConfig {
        edge: Some(EdgeConfig::new(default_edge_model())),
        cloud: Some(cloud(base_url)),
        state_dir: Some(state.clone()),
        routing: Routing::CloudOnly,
        ..ClientConfig::default()
    };
    let client = Client::open(config, |_| {}).await.expect("client opens");
    let (sink, mut receiver) = EventSink::channel();
    let started = Instant::now();
    let cancel = CancellationToken::new();
    let mut events = Vec::new();
    let answer = {
        let run = client.ask(QUESTION, &sink, &cancel);
        tokio::pin!(run);
        loop {
            tokio::select! {
                Some(event) = receiver.recv() => {
                    on_event(&event);
                    events.push(event);
                }
                result = &mut run => break result,
            }
        }
    };
    drop(sink);
    while let Some(event) = receiver.recv().await {
        events.push(event);
    }
    let elapsed = started.elapsed();
    let answer = answer.unwrap_or_else(|e| panic!("{test}: no answer: {e}"));
    drop(client);
    // The store holds the query's successful cloud calls exactly as the server reported them, and
    // besides them only the failed attempts that received something, billed as estimated.
    let store = Store::open(&state).unwrap();
    let day = store.window_totals(Window::Day, now_unix_seconds()).unwrap();
    let log = store.usage_log().unwrap();
    let reported_records: Vec<_> = log.iter().filter(|(_, r)| !r.estimated).collect();
    let reported = answer.totals.cloud.prompt_tokens + answer.totals.cloud.completion_tokens;
    assert_eq!(reported_records.iter().map(|(_, r)| r.prompt_tokens + r.completion_tokens).sum::<u64>(), reported, "{test}: budget store vs the query's cloud usage");
    assert_eq!(reported_records.len(), answer.totals.cloud.calls as usize, "{test}: cloud requests recorded");
    assert_eq!(day.cloud_requests, log.len() as u64, "{test}: every billed attempt is in the day's totals");
    let billed_failures = log.into_iter().filter(|(_, r)| r.estimated).map(|(_, r)| r).collect();
    drop(store);
    std::fs::remove_dir_all(state).unwrap();
    Outcome { answer, events, elapsed, billed_failures }
}

/// The answer exists, came in time, and the edge stepped in after a cloud failure.
fn assert_edge_answered(test: &str, outcome: &Outcome) {
    assert!(!outcome.answer.text.trim().is_empty(), "{test}: empty answer");
    assert!(outcome.elapsed < ANSWER_WITHIN, "{test}: took {:?}", outcome.elapsed);
    assert!(matches!(outcome.events.last(), Some(Event::Answer { .. })), "{test}: the last event is the answer");
    let edge_fallback = outcome.events.iter().any(|e| match e {
        Event::SubtaskStarted { side: Side::Edge, attempt, .. } | Event::AnswerStarted { side: Side::Edge, attempt, .. } => *attempt > 1,
        Event::PlanReady { direct: Some(_), .. } => true,
        _ => false,
    });
    assert!(edge_fallback, "{test}: events show no move to the edge: {:#?}", outcome.events);
    for event in &outcome.events {
        if let Event::SubtaskFinished { id, report } = event {
            assert!(matches!(report.outcome, SubtaskOutcome::Done { .. }), "{test}: {id} did not finish: {report:?}");
        }
    }
    assert!(outcome.answer.totals.edge.calls >= 1, "{test}: the edge was not used");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_errors_fall_back_to_the_edge() {
    let server = FaultServer::start(|_| Reply::Status(500, vec![])).await;
    let outcome = ask("fault-500", &server.base_url, |_| {}).await;
    assert_edge_answered("500s", &outcome);
    assert!(server.attempts() >= 1, "the cloud was tried");
    assert_eq!(outcome.answer.totals.cloud.calls, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_cloud_falls_back_within_the_deadline() {
    let server = FaultServer::start(|_| Reply::Hang).await;
    let outcome = ask("fault-hang", &server.base_url, |_| {}).await;
    assert_edge_answered("hang", &outcome);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_stream_falls_back_and_bills_what_it_delivered() {
    let server = FaultServer::start(|_| Reply::Events { lines: vec![delta("The"), delta(" answer")], delay: Duration::from_millis(20), end: End::Close }).await;
    let outcome = ask("fault-cut", &server.base_url, |_| {}).await;
    assert_edge_answered("cut stream", &outcome);
    assert_eq!(outcome.answer.totals.cloud_cost, 0.0, "no cloud call succeeded");
    assert!(!outcome.billed_failures.is_empty(), "the cut attempts are billed");
    for record in &outcome.billed_failures {
        assert_eq!(record.completion_tokens, 2, "one token per delivered delta: {record:?}");
        assert!(record.prompt_tokens > 0, "the prompt was sent: {record:?}");
    }
}

/// A real llama-server of our own (the shared test cloud must stay up for other tests).
struct OwnCloud {
    server: Child,
}

impl OwnCloud {
    /// Starts it on `host:port`, inside network namespace `netns` if given.
    fn start(netns: Option<&str>, host: &str, port: u16) -> Self {
        let binary = std::path::PathBuf::from(std::env::var("LLAMA_CPP_BIN").expect("LLAMA_CPP_BIN (set by scripts/env.sh)")).join("llama-server");
        let model = catalog::model_path(catalog::TEST_CLOUD_MODEL);
        let mut command = match netns {
            Some(netns) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", netns]).arg(&binary);
                command
            }
            None => Command::new(&binary),
        };
        let server = command
            .args(["-m", model.to_str().unwrap(), "--host", host, "--port", &port.to_string(), "--alias", "qwen2.5-coder-0.5b-instruct", "-c", "4096", "-t", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("llama-server starts");
        let own = Self { server };
        let started = Instant::now();
        while std::net::TcpStream::connect((host, port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(120), "llama-server on {host}:{port} did not come up");
            std::thread::sleep(Duration::from_millis(250));
        }
        // Listening comes before the model is loaded; wait for /health to say ok.
        while !health_ok(host, port) {
            assert!(started.elapsed() < Duration::from_secs(120), "llama-server on {host}:{port} never became healthy");
            std::thread::sleep(Duration::from_millis(250));
        }
        own
    }

    fn kill(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

impl Drop for OwnCloud {
    fn drop(&mut self) {
        self.kill();
    }
}

fn health_ok(host: &str, port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect((host, port)) else { return false };
    let _ = write!(stream, "GET /health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let mut reply = String::new();
    let _ = stream.read_to_string(&mut reply);
    reply.starts_with("HTTP/1.1 200")
}

/// Whether `event` is text streamed from the cloud. `cloud_steps` remembers the steps started on
/// the cloud; answer text (no subtask id) comes from the step started last (the synthesis, or a
/// one-step plan's subtask), recorded under `None`.
fn is_cloud_subtask_token(event: &Event, cloud_steps: &mut Vec<Option<String>>) -> bool {
    match event {
        Event::SubtaskStarted { id, side, .. } => {
            cloud_steps.retain(Option::is_some);
            if *side == Side::Cloud {
                cloud_steps.extend([Some(id.clone()), None]);
            }
            false
        }
        Event::AnswerStarted { side, .. } => {
            cloud_steps.retain(Option::is_some);
            if *side == Side::Cloud {
                cloud_steps.push(None);
            }
            false
        }
        Event::Token { subtask_id, .. } => cloud_steps.contains(subtask_id),
        _ => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cloud_server_killed_mid_query() {
    let mut cloud = OwnCloud::start(None, "127.0.0.1", 8091);
    let mut cloud_subtasks = Vec::new();
    let mut killed = false;
    let outcome = ask("fault-kill", "http://127.0.0.1:8091/v1", |event| {
        if !killed && is_cloud_subtask_token(event, &mut cloud_subtasks) {
            cloud.kill(); // SIGKILL while a subtask streams from it
            killed = true;
        }
    })
    .await;
    assert!(killed, "no subtask streamed from the cloud before the kill: {:#?}", outcome.events);
    assert_edge_answered("killed server", &outcome);
}

/// Runs `ip` with arguments, failing the test loudly if it cannot (needs root, as in CI).
fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("iproute2 `ip`");
    assert!(status.success(), "ip {}", args.join(" "));
}

/// A network namespace with a veth pair; deleting the namespace removes both ends.
struct Namespace;

impl Namespace {
    const NAME: &'static str = "hf-cloud";

    fn create() -> Self {
        // Leftovers of an earlier run that was killed: a namespace, or the host end of the pair.
        let _ = Command::new("ip").args(["netns", "del", Self::NAME]).stderr(Stdio::null()).status();
        let _ = Command::new("ip").args(["link", "del", "hf-veth0"]).stderr(Stdio::null()).status();
        ip(&["netns", "add", Self::NAME]);
        ip(&["link", "add", "hf-veth0", "type", "veth", "peer", "name", "hf-veth1"]);
        ip(&["link", "set", "hf-veth1", "netns", Self::NAME]);
        ip(&["addr", "add", "10.77.0.1/24", "dev", "hf-veth0"]);
        ip(&["link", "set", "hf-veth0", "up"]);
        ip(&["netns", "exec", Self::NAME, "ip", "addr", "add", "10.77.0.2/24", "dev", "hf-veth1"]);
        ip(&["netns", "exec", Self::NAME, "ip", "link", "set", "hf-veth1", "up"]);
        ip(&["netns", "exec", Self::NAME, "ip", "link", "set", "lo", "up"]);
        Self
    }

    fn cut(&self) {
        ip(&["link", "set", "hf-veth0", "down"]);
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", Self::NAME]).status();
    }
}

/// Forwards a loopback port to the namespace (the SDK allows plain http only on loopback; the
/// bytes still cross the veth link that the test takes down).
async fn forward(listener: TcpListener, target: &'static str) {
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else { return };
        tokio::spawn(async move {
            if let Ok(mut outbound) = TcpStream::connect(target).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_network_drops_mid_query() {
    let namespace = Namespace::create();
    let _cloud = OwnCloud::start(Some(Namespace::NAME), "10.77.0.2", 8092);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(forward(listener, "10.77.0.2:8092"));
    let mut cloud_subtasks = Vec::new();
    let mut cut = false;
    let outcome = ask("fault-network", &url, |event| {
        if !cut && is_cloud_subtask_token(event, &mut cloud_subtasks) {
            namespace.cut();
            cut = true;
        }
    })
    .await;
    assert!(cut, "no subtask streamed from the cloud before the cut: {:#?}", outcome.events);
    assert_edge_answered("network down", &outcome);
}
