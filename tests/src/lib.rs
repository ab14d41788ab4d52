//! Helpers shared by the end-to-end tests.

pub mod fault_server;
pub mod generated_cases;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use hybridflow_core::model::catalog;

/// The provisioned default edge model; fails loudly (not a skip) when it is missing.
pub fn default_edge_model() -> PathBuf {
    let path = catalog::model_path(catalog::DEFAULT_EDGE_MODEL);
    assert!(
        path.exists(),
        "{} is missing: run `scripts/setup.sh` (or `cargo xtask fetch-models`) first",
        path.display()
    );
    path
}

/// CPU time (user + system) this process has used so far, from /proc (Linux).
pub fn process_cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after_name = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // USER_HZ is 100 on every Linux configuration that matters here.
    Duration::from_millis(ticks * 10)
}

/// A scratch directory unique to one test.
pub fn scratch_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hybridflow-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Copies the first `bytes` bytes of `src` to `dst`.
pub fn write_prefix(src: &Path, dst: &Path, bytes: usize) {
    let data = std::fs::read(src).unwrap();
    std::fs::write(dst, &data[..bytes.min(data.len())]).unwrap();
}

/// Base URL of the real test cloud (llama-server started by `scripts/cloud-server.sh start`,
/// which `scripts/test.sh` does).
pub fn test_cloud_url() -> String {
    std::env::var("HYBRIDFLOW_CLOUD_URL").unwrap_or_else(|_| "http://127.0.0.1:8088/v1".into())
}

/// A cloud model on the real test server; fails loudly when the server is not up.
pub fn test_cloud() -> hybridflow_core::model::cloud::CloudModel {
    let url = test_cloud_url();
    let health = url.trim_end_matches("/v1").trim_start_matches("http://").to_string();
    assert!(
        std::net::TcpStream::connect(&health).is_ok(),
        "no test cloud at {url}: run `scripts/cloud-server.sh start` (scripts/test.sh does)"
    );
    let mut config = hybridflow_core::model::cloud::CloudConfig::new(url, "qwen2.5-coder-0.5b-instruct");
    config.price = hybridflow_core::model::cloud::Price { input_per_million: 0.15, output_per_million: 0.60 };
    hybridflow_core::model::cloud::CloudModel::new(config).expect("test cloud config is valid")
}

/// Tokens the test cloud has processed and generated so far (llama-server's `/metrics`): it does
/// not change when no request reaches the server.
pub fn test_cloud_token_counter() -> f64 {
    use std::io::{Read, Write};
    let url = test_cloud_url();
    let host = url.trim_start_matches("http://").split('/').next().unwrap().to_string();
    let mut stream = std::net::TcpStream::connect(&host).expect("test cloud reachable");
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).unwrap();
    body.lines()
        .filter(|l| l.starts_with("llamacpp:prompt_tokens_total") || l.starts_with("llamacpp:tokens_predicted_total"))
        .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
        .sum()
}

/// Drains `stream`, cancelling it through its handle after `after_deltas` deltas; returns how
/// many deltas arrived and the final usage (a cancelled stream still ends with one).
pub async fn cancel_after(mut stream: hybridflow_core::model::TokenStream, after_deltas: usize) -> (usize, hybridflow_core::model::Usage) {
    use futures::StreamExt;
    use hybridflow_core::model::StreamEvent;
    let cancel = stream.cancel_handle();
    let mut deltas = 0;
    while let Some(event) = stream.next().await {
        match event.expect("no error while cancelling") {
            StreamEvent::Delta(_) => {
                deltas += 1;
                if deltas == after_deltas {
                    cancel.cancel();
                }
            }
            StreamEvent::Finished(usage) => return (deltas, usage),
        }
    }
    panic!("stream ended without a usage record");
}

/// Runs `query` on `scheduler` and returns the answer with every event it emitted.
pub async fn run_collecting(
    scheduler: &hybridflow_core::exec::Scheduler,
    query: &str,
) -> (hybridflow_core::exec::Answer, Vec<hybridflow_core::exec::Event>) {
    let (sink, mut rx) = hybridflow_core::exec::EventSink::channel();
    let answer = scheduler.run(query, &sink, &tokio_util::sync::CancellationToken::new()).await.expect("the query is answered");
    drop(sink);
    let mut events = Vec::new();
    while let Some(event) = rx.recv().await {
        events.push(event);
    }
    (answer, events)
}

/// Captures every log record of the test binary, at trace level.
struct CapturingLogger(Mutex<Vec<String>>);

impl log::Log for CapturingLogger {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        self.0.lock().unwrap().push(format!("{} {}", record.target(), record.args()));
    }
    fn flush(&self) {}
}

/// Every log line of this test binary so far; the first call installs the capturing logger
/// (tests use it to prove a secret never reaches the logs).
pub fn captured_logs() -> Vec<String> {
    static LOGGER: OnceLock<&'static CapturingLogger> = OnceLock::new();
    let logger = LOGGER.get_or_init(|| {
        let logger: &'static CapturingLogger = Box::leak(Box::new(CapturingLogger(Mutex::new(Vec::new()))));
        log::set_logger(logger).unwrap();
        log::set_max_level(log::LevelFilter::Trace);
        logger
    });
    logger.0.lock().unwrap().clone()
}
