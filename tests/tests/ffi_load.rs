//! Load through the FFI object, as apps use it: many threads start, stream, cancel and await
//! queries on one `HybridFlow` for a bounded time (HYBRIDFLOW_LOAD_SECONDS, default 40) with the
//! real edge model and the real cloud. No deadlock, no panic, every query ends with an answer,
//! `Cancelled` or `Busy`, and memory stops growing. Peak RSS is printed for docs/reliability.md.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use futures::executor::block_on;
use hybridflow_e2e::{default_edge_model, scratch_dir, test_cloud_url};
use hybridflow_ffi::client::{EventListener, HybridFlow};
use hybridflow_ffi::config::{CloudEndpoint, Decomposition, HybridFlowConfig};
use hybridflow_ffi::error::HybridFlowError;
use hybridflow_ffi::events::Event;

const THREADS: usize = 8;
const QUESTIONS: [&str; 4] = [
    "What is 7 times 8?",
    "Name the largest planet.",
    "A shop sells pens at $2 each and notebooks at $5 each. Tom buys 3 pens and 2 notebooks. How much does he pay in total?",
    "Is 17 a prime number?",
];

struct Counter(Arc<AtomicUsize>);

impl EventListener for Counter {
    fn on_event(&self, _event: Event) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// Resident set size and its peak, in MB, from /proc (Linux).
fn rss_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |name: &str| -> f64 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse::<f64>().unwrap() / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[derive(Default, Debug)]
struct Tally {
    answered: usize,
    cancelled: usize,
    busy: usize,
    events: usize,
}

#[test]
fn many_threads_many_queries_no_deadlock_no_leak() {
    let seconds: u64 = std::env::var("HYBRIDFLOW_LOAD_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(40);
    let state = scratch_dir("ffi-load");
    let config = HybridFlowConfig {
        edge_model_path: Some(default_edge_model().display().to_string()),
        edge_engine: None,
        gpu: None,
        gpu_deny_list: None,
        cloud: Some(CloudEndpoint {
            base_url: test_cloud_url(),
            model: "qwen2.5-coder-0.5b-instruct".into(),
            api_key: None,
            input_price_per_million_tokens: 0.15,
            output_price_per_million_tokens: 0.6,
            timeout_ms: Some(60_000),
            max_attempts: None,
            trust_roots: None,
            extra_root_certificates_pem: None,
        }),
        state_dir: Some(state.display().to_string()),
        budgets: Default::default(),
        policy: None,
        routing: None,
        // Plans: the most concurrent path (subtasks on both sides at once).
        decomposition: Some(Decomposition::LongQueries),
        max_query_chars: 8000,
        max_subtasks: 4,
        max_edge_generations: 1,
        max_queries_in_flight: 6,
        max_cloud_requests: 4,
    };
    let client = block_on(HybridFlow::open(config.clone(), None)).expect("opens");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (done, finished) = mpsc::channel();
    for thread in 0..THREADS {
        let client = client.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            let mut tally = Tally::default();
            let mut round = 0;
            while Instant::now() < deadline {
                round += 1;
                let events = Arc::new(AtomicUsize::new(0));
                let question = QUESTIONS[(thread + round) % QUESTIONS.len()];
                let handle = match client.ask_streaming(question.into(), Box::new(Counter(events.clone()))) {
                    Ok(handle) => handle,
                    Err(e) => panic!("ask_streaming: {e}"),
                };
                // A third of the queries are cancelled mid-way, some are dropped without waiting.
                match round % 3 {
                    0 => {
                        std::thread::sleep(Duration::from_millis(150 + 50 * thread as u64));
                        handle.cancel();
                    }
                    1 if thread % 2 == 0 => {
                        drop(handle);
                        tally.cancelled += 1;
                        continue;
                    }
                    _ => {}
                }
                match block_on(handle.answer()) {
                    Ok(answer) => {
                        assert!(!answer.text.is_empty() || answer.totals.subtasks > 0);
                        tally.answered += 1;
                    }
                    Err(HybridFlowError::Cancelled) => tally.cancelled += 1,
                    Err(HybridFlowError::Busy(_)) => {
                        tally.busy += 1;
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    Err(other) => panic!("thread {thread}: unexpected {other:?}"),
                }
                tally.events += events.load(Ordering::Relaxed);
            }
            done.send(tally).unwrap();
        });
    }
    drop(done);
    // Memory once the load is established; it must not keep growing from here.
    std::thread::sleep(Duration::from_secs(seconds / 4));
    let warm_rss = rss_mb().0;
    let mut total = Tally::default();
    for received in 0..THREADS {
        // No deadlock: every thread reports within the run time plus one slow query.
        let tally = finished.recv_timeout(Duration::from_secs(seconds + 180)).unwrap_or_else(|_| panic!("{} threads never finished", THREADS - received));
        total.answered += tally.answered;
        total.cancelled += tally.cancelled;
        total.busy += tally.busy;
        total.events += tally.events;
    }
    // The client still answers after the storm, then shuts down cleanly.
    assert!(block_on(client.ask("What is 1 + 1?".into())).is_ok());
    block_on(client.shutdown());
    assert!(matches!(block_on(client.ask("again?".into())), Err(HybridFlowError::Closed)));
    let (rss, peak) = rss_mb();
    println!("ffi load: {seconds} s, {THREADS} threads: {total:?}; RSS {rss:.0} MB (peak {peak:.0} MB, {warm_rss:.0} MB a quarter in)");
    assert!(total.answered > 0 && total.cancelled > 0, "{total:?}");
    assert!(rss < 2.0 * warm_rss + 200.0, "memory kept growing: {rss:.0} MB vs {warm_rss:.0} MB");
    drop(client);
    // Shutdown released the state directory: a new client opens it at once.
    let reopened = block_on(HybridFlow::open(config, None)).expect("reopened right after shutdown");
    block_on(reopened.shutdown());
    std::fs::remove_dir_all(state).unwrap();
}
