//! The user's key and data: with a gate closed (offload never, offline, personal data), no byte
//! reaches the network under any routing, retries and fallbacks included; the API key is in no
//! log line, event, error, printed FFI object or file of the budget store after real cloud traffic.

use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hybridflow_core::client::{Client, ClientConfig, Routing};
use hybridflow_core::device::{AppPolicy, DeviceState, Network, Offload};
use hybridflow_core::exec::{Decomposition, Event, EventSink};
use hybridflow_core::model::cloud::{ApiKey, CloudConfig};
use hybridflow_core::model::edge::EdgeConfig;
use hybridflow_core::model::Side;
use hybridflow_core::guard::Gate;
use hybridflow_e2e::{captured_logs, default_edge_model, scratch_dir, test_cloud_token_counter, test_cloud_url};
use tokio_util::sync::CancellationToken;

const SECRET: &str = "sk-hybridflow-secret-4242";
const QUESTION: &str = "A shop sells pens at $2 each and notebooks at $5 each. Tom buys 3 pens and 2 notebooks. How much does he pay in total?";

fn config(cloud_url: &str, routing: Routing, test: &str) -> ClientConfig {
    let mut cloud = CloudConfig::new(cloud_url, "qwen2.5-coder-0.5b-instruct");
    cloud.api_key = Some(ApiKey::new(SECRET));
    ClientConfig {
        edge: Some(EdgeConfig::new(default_edge_model())),
        cloud: Some(cloud),
        state_dir: Some(scratch_dir(test)),
        routing,
        ..ClientConfig::default()
    }
}

async fn ask(client: &Client) -> Vec<Event> {
    ask_this(client, QUESTION).await
}

async fn ask_this(client: &Client, question: &str) -> Vec<Event> {
    let (sink, mut receiver) = EventSink::channel();
    client.ask(question, &sink, &CancellationToken::new()).await.expect("answered");
    drop(sink);
    let mut events = Vec::new();
    while let Some(event) = receiver.recv().await {
        events.push(event);
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_offload_sends_no_byte_to_the_network() {
    captured_logs();
    // A listener standing in for the cloud counts every connection, and the real server's own
    // token counters show whether anything reached it.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}/v1", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    std::thread::spawn(move || {
        for _ in listener.incoming() {
            counted.fetch_add(1, Ordering::SeqCst);
        }
    });
    let real_before = test_cloud_token_counter();
    let never = AppPolicy { offload: Offload::Never, ..AppPolicy::default() };
    for (url, test) in [(silent_url, "never-listener"), (test_cloud_url(), "never-real")] {
        let config = ClientConfig { policy: never, ..config(&url, Routing::Learned, test) };
        let state = config.state_dir.clone().unwrap();
        let client = Client::open(config, |_| {}).await.unwrap();
        let events = ask(&client).await;
        let routes: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                Event::SubtaskStarted { side, explanation, .. } | Event::AnswerStarted { side, explanation, .. } => Some((*side, explanation.as_ref().and_then(|x| x.gate))),
                _ => None,
            })
            .collect();
        assert!(!routes.is_empty());
        assert!(routes.iter().all(|r| *r == (Side::Edge, Some(Gate::PolicyNeverOffload))), "{routes:?}");
        client.close().await;
        std::fs::remove_dir_all(state).unwrap();
    }
    assert_eq!(connections.load(Ordering::SeqCst), 0, "a connection reached the network");
    assert_eq!(test_cloud_token_counter(), real_before, "the real cloud processed tokens");
}

/// A routing that sends planning and hard steps to the cloud, with the gate closed in three ways:
/// the guard refuses each cloud request when it is sent, the events say which gate, the edge
/// answers, and the real server's own token counter does not move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_gate_sends_no_byte_to_the_real_cloud_under_a_cloud_routing() {
    let personal = "My email is ada.lovelace@example.com. A shop sells pens at $2 each and notebooks at $5 each. Tom buys 3 pens and 2 notebooks. How much does he pay in total?";
    for (gate, test) in [(Gate::PolicyNeverOffload, "gate-never"), (Gate::Offline, "gate-offline"), (Gate::PersonalData, "gate-personal")] {
        let mut config = config(&test_cloud_url(), Routing::ByDifficulty, test);
        config.exec.decomposition = Decomposition::LongQueries; // planning is a cloud step
        if gate == Gate::PolicyNeverOffload {
            config.policy.offload = Offload::Never;
        }
        let state = config.state_dir.clone().unwrap();
        let client = Client::open(config, |_| {}).await.unwrap();
        if gate == Gate::Offline {
            client.set_device_state(DeviceState { network: Network::None, ..DeviceState::default() });
        }
        let before = test_cloud_token_counter();
        let events = ask_this(&client, if gate == Gate::PersonalData { personal } else { QUESTION }).await;
        assert_eq!(test_cloud_token_counter(), before, "{gate:?}: the real cloud processed tokens");
        assert!(!events.iter().any(|e| matches!(e, Event::SubtaskStarted { side: Side::Cloud, .. } | Event::AnswerStarted { side: Side::Cloud, .. })), "{gate:?}: {events:?}");
        let refused: Vec<Gate> = events.iter().filter_map(|e| match e { Event::CloudRefused { gate, .. } => Some(*gate), _ => None }).collect();
        assert!(!refused.is_empty() && refused.iter().all(|g| *g == gate), "{gate:?}: the planner's cloud request was refused and said so: {refused:?}");
        assert_eq!(client.budget_status().await.unwrap().today.cloud_requests, 0);
        client.close().await;
        std::fs::remove_dir_all(state).unwrap();
    }
}

#[test]
fn the_key_is_redacted_in_every_ffi_object_that_holds_it() {
    let key = hybridflow_ffi::config::ApiKey::new(SECRET.into());
    let endpoint = hybridflow_ffi::config::CloudEndpoint {
        base_url: "https://api.example.com/v1".into(),
        model: "m".into(),
        api_key: Some(key.clone()),
        input_price_per_million_tokens: 0.0,
        output_price_per_million_tokens: 0.0,
        timeout_ms: Some(1_000),
        max_attempts: None,
        trust_roots: None,
        extra_root_certificates_pem: None,
    };
    let config = hybridflow_ffi::config::HybridFlowConfig {
        edge_model_path: None,
        edge_engine: None,
        gpu: None,
        gpu_deny_list: None,
        cloud: Some(endpoint.clone()),
        state_dir: None,
        budgets: Default::default(),
        policy: None,
        routing: None,
        decomposition: None,
        max_query_chars: 8_000,
        max_subtasks: 6,
        max_edge_generations: 1,
        max_queries_in_flight: 16,
        max_cloud_requests: 4,
    };
    let printed = format!("{key} {key:?} {endpoint:?} {config:?} {:?}", config.to_core().unwrap());
    assert!(!printed.contains(SECRET), "{printed}");
    assert!(printed.contains("redacted"));
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_key_is_in_no_log_event_or_stored_file() {
    captured_logs();
    let config = config(&test_cloud_url(), Routing::CloudOnly, "secret-store");
    let state = config.state_dir.clone().unwrap();
    let rendered_config = format!("{config:?}");
    let client = Client::open(config, |_| {}).await.unwrap();
    let events = ask(&client).await;
    assert!(events.iter().any(|e| matches!(e, Event::SubtaskStarted { side: Side::Cloud, .. } | Event::AnswerStarted { side: Side::Cloud, .. })), "the cloud was used");
    assert!(client.budget_status().await.unwrap().today.cloud_requests > 0, "spending was stored");
    client.close().await;

    assert!(!rendered_config.contains(SECRET), "Debug of the configuration shows the key");
    assert!(!format!("{events:?}").contains(SECRET), "an event carries the key");
    let logs = captured_logs().join("\n");
    assert!(!logs.is_empty() && !logs.contains(SECRET), "a log line carries the key");
    let files = files_under(&state);
    assert!(!files.is_empty());
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        assert!(!bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()), "{} holds the key", file.display());
    }
    std::fs::remove_dir_all(state).unwrap();
}
