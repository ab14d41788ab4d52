//! The cloud client against a deliberately misbehaving local server: every fault gets its typed
//! error, the right number of attempts, and keeps the text received before it.

use std::time::{Duration, Instant};

use futures::StreamExt;
use hybridflow_core::model::cloud::{ApiKey, BreakerState, CloudConfig, CloudError, CloudModel, RetryPolicy, TimeoutStage};
use hybridflow_core::model::{ChatModel, ChatRequest, FinishReason, Message, ModelError, StreamEvent, TokenCount};
use hybridflow_e2e::{cancel_after, captured_logs};
use hybridflow_e2e::fault_server::{delta, stream_end, End, FaultServer, Reply};

const SECRET: &str = "sk-test-DO-NOT-LEAK-4242";

fn config(base_url: &str) -> CloudConfig {
    captured_logs();
    let mut config = CloudConfig::new(base_url, "test-model");
    config.api_key = Some(ApiKey::new(SECRET));
    config.retry = RetryPolicy { max_attempts: 3, base_delay: Duration::from_millis(20), max_delay: Duration::from_millis(80) };
    config.timeouts.first_token = Duration::from_millis(400);
    config.timeouts.between_tokens = Duration::from_millis(400);
    config.breaker.failure_threshold = 100; // breaker has its own test
    config
}

fn ask() -> ChatRequest {
    ChatRequest::new(vec![Message::user("hello")]).with_max_tokens(16)
}

/// Runs a streamed request; returns the deltas received and the final outcome.
async fn run_stream(model: &CloudModel) -> (String, Result<hybridflow_core::model::Usage, ModelError>) {
    let mut stream = match model.stream(ask()).await {
        Ok(stream) => stream,
        Err(e) => return (String::new(), Err(e)),
    };
    let mut text = String::new();
    while let Some(event) = stream.next().await {
        match event {
            Ok(StreamEvent::Delta(d)) => text.push_str(&d),
            Ok(StreamEvent::Finished(usage)) => return (text, Ok(usage)),
            Err(e) => return (text, Err(e)),
        }
    }
    panic!("stream ended without usage or error");
}

fn cloud_error(result: Result<impl std::fmt::Debug, ModelError>) -> (CloudError, u32) {
    match result {
        Err(ModelError::Cloud { error, attempts }) => (error, attempts),
        other => panic!("expected a cloud error, got {other:?}"),
    }
}

fn well_formed_stream() -> Reply {
    let mut lines = vec![delta("Hel"), delta("lo")];
    lines.extend(stream_end(9, 2));
    Reply::Events { lines, delay: Duration::ZERO, end: End::Close }
}

#[tokio::test]
async fn well_formed_stream_reports_server_usage_and_sends_the_key() {
    let server = FaultServer::start(|_| well_formed_stream()).await;
    let model = CloudModel::new(config(&server.base_url)).unwrap();
    let (text, usage) = run_stream(&model).await;
    let usage = usage.unwrap();
    assert_eq!(text, "Hello");
    assert_eq!((usage.prompt_tokens, usage.completion_tokens, usage.token_count), (9, 2, TokenCount::Reported));
    let request = &server.requests()[0];
    assert!(request.starts_with("POST /v1/chat/completions"), "{request}");
    assert!(request.contains(&format!("authorization: Bearer {SECRET}")), "{request}");
    assert!(request.contains("\"include_usage\":true"));
}

#[tokio::test]
async fn without_server_usage_tokens_are_estimated() {
    let server = FaultServer::start(|_| Reply::Events {
        lines: vec![delta("four score and seven"), "data: [DONE]".into()],
        delay: Duration::ZERO,
        end: End::Close,
    })
    .await;
    let (text, usage) = run_stream(&CloudModel::new(config(&server.base_url)).unwrap()).await;
    let usage = usage.unwrap();
    assert_eq!(text, "four score and seven");
    assert_eq!(usage.token_count, TokenCount::Estimated);
    assert_eq!(usage.completion_tokens, 5); // 20 characters / 4
}

#[tokio::test]
async fn non_streamed_answer_with_usage() {
    let server = FaultServer::start(|_| Reply::Json(
        r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"Paris"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":1,"total_tokens":13}}"#.into(),
    )).await;
    let completion = CloudModel::new(config(&server.base_url)).unwrap().complete(ask()).await.unwrap();
    assert_eq!(completion.text, "Paris");
    assert_eq!((completion.usage.prompt_tokens, completion.usage.token_count), (12, TokenCount::Reported));
    assert!(server.requests()[0].contains("\"stream\":false"));
}

#[tokio::test]
async fn connection_refused_is_retried_then_typed() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }; // closed again: nothing listens there now
    let model = CloudModel::new(config(&format!("http://127.0.0.1:{port}/v1"))).unwrap();
    let (error, attempts) = cloud_error(model.stream(ask()).await.map(|_| ()));
    assert!(matches!(error, CloudError::ConnectionRefused), "{error:?}");
    assert_eq!(attempts, 3);
}

#[tokio::test]
async fn dns_failure_is_typed_and_not_retried() {
    let model = CloudModel::new(config("https://hybridflow-test.invalid/v1")).unwrap();
    let (error, attempts) = cloud_error(model.stream(ask()).await.map(|_| ()));
    assert!(matches!(error, CloudError::Dns), "{error:?}");
    assert_eq!(attempts, 1);
}

#[tokio::test]
async fn unauthorized_and_forbidden_are_not_retried() {
    for status in [401u16, 403] {
        let server = FaultServer::start(move |_| Reply::Status(status, vec![])).await;
        let (error, attempts) = cloud_error(CloudModel::new(config(&server.base_url)).unwrap().stream(ask()).await.map(|_| ()));
        assert!(matches!(error, CloudError::Unauthorized { status: s } if s == status), "{error:?}");
        assert_eq!((attempts, server.attempts()), (1, 1));
    }
}

#[tokio::test]
async fn server_errors_are_retried_until_success() {
    let server = FaultServer::start(|attempt| if attempt < 3 { Reply::Status(503, vec![]) } else { well_formed_stream() }).await;
    let (text, usage) = run_stream(&CloudModel::new(config(&server.base_url)).unwrap()).await;
    assert_eq!(text, "Hello");
    assert!(usage.is_ok());
    assert_eq!(server.attempts(), 3);
}

#[tokio::test]
async fn persistent_server_errors_exhaust_the_attempts() {
    let server = FaultServer::start(|_| Reply::Status(500, vec![])).await;
    let (error, attempts) = cloud_error(CloudModel::new(config(&server.base_url)).unwrap().stream(ask()).await.map(|_| ()));
    assert!(matches!(error, CloudError::Http { status: 500 }), "{error:?}");
    assert_eq!((attempts, server.attempts()), (3, 3));
}

#[tokio::test]
async fn rate_limit_honours_retry_after() {
    let server = FaultServer::start(|attempt| {
        if attempt == 1 { Reply::Status(429, vec![("Retry-After", "1".into())]) } else { well_formed_stream() }
    })
    .await;
    let started = Instant::now();
    let (_, usage) = run_stream(&CloudModel::new(config(&server.base_url)).unwrap()).await;
    assert!(usage.is_ok());
    assert_eq!(server.attempts(), 2);
    assert!(started.elapsed() >= Duration::from_secs(1), "retried before Retry-After: {:?}", started.elapsed());
}

#[tokio::test]
async fn retries_stop_at_the_total_deadline() {
    let server = FaultServer::start(|_| Reply::Status(429, vec![("Retry-After", "5".into())])).await;
    let mut config = config(&server.base_url);
    config.timeouts.total = Duration::from_secs(2);
    let started = Instant::now();
    let (error, attempts) = cloud_error(CloudModel::new(config).unwrap().stream(ask()).await.map(|_| ()));
    assert!(matches!(error, CloudError::Http { status: 429 }), "{error:?}");
    assert_eq!(attempts, 1, "a 5 s Retry-After does not fit in a 2 s budget");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn silent_server_times_out_before_the_first_token() {
    let server = FaultServer::start(|_| Reply::Hang).await;
    let (error, attempts) = cloud_error(CloudModel::new(config(&server.base_url)).unwrap().stream(ask()).await.map(|_| ()));
    assert!(matches!(error, CloudError::Timeout(TimeoutStage::FirstToken)), "{error:?}");
    assert_eq!((attempts, server.attempts()), (3, 3));
}

#[tokio::test]
async fn stall_mid_stream_times_out_between_tokens_keeping_the_text() {
    let server = FaultServer::start(|_| Reply::Events { lines: vec![delta("partial ")], delay: Duration::ZERO, end: End::Hang }).await;
    let (text, result) = run_stream(&CloudModel::new(config(&server.base_url)).unwrap()).await;
    let (error, attempts) = cloud_error(result);
    assert_eq!(text, "partial ");
    assert!(matches!(error, CloudError::Timeout(TimeoutStage::BetweenTokens)), "{error:?}");
    assert_eq!(attempts, 1, "never retried once text has been streamed");
}

#[tokio::test]
async fn slow_drip_hits_the_total_timeout() {
    let server = FaultServer::start(|_| Reply::Events {
        lines: (0..50).map(|i| delta(&format!("{i} "))).collect(),
        delay: Duration::from_millis(100),
        end: End::Close,
    })
    .await;
    let mut config = config(&server.base_url);
    config.timeouts.total = Duration::from_millis(700);
    let (text, result) = run_stream(&CloudModel::new(config).unwrap()).await;
    let (error, _) = cloud_error(result);
    assert!(matches!(error, CloudError::Timeout(TimeoutStage::Total)), "{error:?}");
    assert!(text.starts_with("0 1 "), "{text}");
}

#[tokio::test]
async fn stream_cut_mid_way_keeps_the_partial_text() {
    let server = FaultServer::start(|_| Reply::Events { lines: vec![delta("The answer "), delta("is")], delay: Duration::ZERO, end: End::Close }).await;
    let (text, result) = run_stream(&CloudModel::new(config(&server.base_url)).unwrap()).await;
    let (error, attempts) = cloud_error(result);
    assert_eq!(text, "The answer is");
    assert!(matches!(error, CloudError::StreamCut { ref partial_text } if partial_text == "The answer is"), "{error:?}");
    assert_eq!(attempts, 1);
}

#[tokio::test]
async fn malformed_json_and_sse_lines_are_typed() {
    for bad_line in ["data: {\"choices\": [", "this is not an event stream"] {
        let server = FaultServer::start(move |_| Reply::Events { lines: vec![delta("ok "), bad_line.into()], delay: Duration::ZERO, end: End::Close }).await;
        let (text, result) = run_stream(&CloudModel::new(config(&server.base_url)).unwrap()).await;
        let (error, _) = cloud_error(result);
        assert_eq!(text, "ok ");
        assert!(matches!(error, CloudError::Malformed { ref partial_text, .. } if partial_text == "ok "), "{error:?}");
    }
    let server = FaultServer::start(|_| Reply::Json("{\"choices\": oops".into())).await;
    let (error, _) = cloud_error(CloudModel::new(config(&server.base_url)).unwrap().complete(ask()).await);
    assert!(matches!(error, CloudError::Malformed { .. }), "{error:?}");
}

#[tokio::test]
async fn oversized_responses_are_bounded() {
    let server = FaultServer::start(|_| Reply::Events { lines: (0..200).map(|_| delta("xxxxxxxxxx")).collect(), delay: Duration::ZERO, end: End::Close }).await;
    let mut config = config(&server.base_url);
    config.max_response_bytes = 2048;
    let model = CloudModel::new(config).unwrap();
    let (text, result) = run_stream(&model).await;
    let (error, _) = cloud_error(result);
    assert!(matches!(error, CloudError::TooLarge { limit_bytes: 2048, .. }), "{error:?}");
    assert!(!text.is_empty() && text.len() < 2048);

    let big = format!(r#"{{"choices":[{{"message":{{"content":"{}"}}}}]}}"#, "y".repeat(10_000));
    let server = FaultServer::start(move |_| Reply::Json(big.clone())).await;
    let mut config = self::config(&server.base_url);
    config.max_response_bytes = 2048;
    let (error, _) = cloud_error(CloudModel::new(config).unwrap().complete(ask()).await);
    assert!(matches!(error, CloudError::TooLarge { .. }), "{error:?}");
}

#[tokio::test]
async fn cancellation_closes_the_connection() {
    let server = FaultServer::start(|_| Reply::Events {
        lines: (0..100).map(|i| delta(&format!("{i} "))).collect(),
        delay: Duration::from_millis(50),
        end: End::Close,
    })
    .await;
    let model = CloudModel::new(config(&server.base_url)).unwrap();
    let (_, usage) = cancel_after(model.stream(ask()).await.unwrap(), 2).await;
    assert_eq!(usage.finish_reason, FinishReason::Cancelled);
    let deadline = Instant::now() + Duration::from_secs(2);
    while !server.client_closed() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(server.client_closed(), "the server kept streaming to a cancelled client");
}

#[tokio::test]
async fn circuit_breaker_opens_after_repeated_failures() {
    let server = FaultServer::start(|_| Reply::Status(500, vec![])).await;
    let mut config = config(&server.base_url);
    config.retry.max_attempts = 1;
    config.breaker.failure_threshold = 2;
    let model = CloudModel::new(config).unwrap();
    for _ in 0..2 {
        cloud_error(model.stream(ask()).await.map(|_| ()));
    }
    assert!(matches!(model.breaker_state(), BreakerState::Open { .. }));
    let (error, attempts) = cloud_error(model.stream(ask()).await.map(|_| ()));
    assert!(matches!(error, CloudError::CircuitOpen));
    assert_eq!((attempts, server.attempts()), (0, 2), "an open breaker sends nothing");
}

#[tokio::test]
async fn the_api_key_never_appears_in_logs_or_errors() {
    let server = FaultServer::start(|attempt| match attempt {
        1 => Reply::Status(401, vec![]),
        2 => Reply::Status(500, vec![]),
        _ => Reply::Events { lines: vec![delta("x"), "junk".into()], delay: Duration::ZERO, end: End::Close },
    })
    .await;
    let mut config = config(&server.base_url);
    config.retry.max_attempts = 1;
    let model = CloudModel::new(config.clone()).unwrap();
    let mut rendered = format!("{config:?}");
    for _ in 0..3 {
        let (_, result) = run_stream(&model).await;
        let error = result.unwrap_err();
        rendered.push_str(&format!("{error} {error:?}"));
    }
    let logs = captured_logs().join("\n");
    assert!(logs.contains("cloud"), "the failures were logged: {logs}");
    assert!(!logs.contains(SECRET) && !rendered.contains(SECRET), "the key leaked");
    assert_eq!(server.attempts(), 3);
}

#[tokio::test]
async fn invalid_configuration_is_rejected() {
    for base in ["http://api.example.com/v1", "file:///etc/passwd", "::"] {
        assert!(matches!(CloudModel::new(CloudConfig::new(base, "m")), Err(CloudError::InvalidConfig(_))), "{base}");
    }
    let mut bad_header = CloudConfig::new("https://api.example.com/v1", "m");
    bad_header.extra_headers.push(("bad header".into(), "v".into()));
    assert!(matches!(CloudModel::new(bad_header), Err(CloudError::InvalidConfig(_))));
    let mut bad_ca = CloudConfig::new("https://api.example.com/v1", "m");
    bad_ca.extra_root_certificates_pem = Some("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n".into());
    assert!(matches!(CloudModel::new(bad_ca), Err(CloudError::InvalidConfig(_))));
    assert!(matches!(CloudModel::new(CloudConfig::new("https://api.example.com/v1", " ")), Err(CloudError::InvalidConfig(_))));
}

#[tokio::test]
async fn connect_timeout_when_the_handshake_never_completes() {
    // A listener that never accepts, with its accept queue filled: the kernel drops further SYNs,
    // so a new connection hangs in the handshake (loopback only, no outside address involved).
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let address = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        if let Ok(Ok(stream)) = tokio::time::timeout(Duration::from_millis(200), tokio::net::TcpStream::connect(address)).await {
            fillers.push(stream);
        }
    }
    let mut config = config(&format!("http://{address}/v1"));
    config.timeouts.connect = Duration::from_millis(300);
    config.timeouts.first_token = Duration::from_secs(5);
    config.retry.max_attempts = 2;
    let started = Instant::now();
    let (error, attempts) = cloud_error(CloudModel::new(config).unwrap().stream(ask()).await.map(|_| ()));
    assert!(matches!(error, CloudError::Timeout(TimeoutStage::Connect)), "{error:?}");
    assert_eq!(attempts, 2, "connect timeouts are retried");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    drop((fillers, listener));
}
