// Properties every input must satisfy, shared by the fuzz targets (fuzz/fuzz_targets) and by the
// regression test that replays the committed corpus (tests/tests/fuzz_corpus.rs). A panic or a
// failed assertion is a finding.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use hybridflow_core::client::{ClientConfig, Routing};
use hybridflow_core::model::cloud::wire::{parse_json, SseDecoder, SseLine};
use hybridflow_core::model::cloud::{ApiKey, CloudConfig};
use hybridflow_core::model::edge::EdgeConfig;
use hybridflow_core::plan::parse::{parse_plan, PlanStreamParser};
use hybridflow_core::plan::validate::validate;
use hybridflow_core::guard::Limits;

/// The first byte picks where the text is cut (streamed plans arrive in arbitrary pieces).
fn split_point(data: &[u8], text: &str) -> usize {
    let wanted = data.first().map_or(0, |b| *b as usize * text.len() / 256);
    (wanted..=text.len()).find(|&i| text.is_char_boundary(i)).unwrap_or(text.len())
}

/// Planner output: the same plan whether it arrives whole or in two pieces; validation returns
/// a DAG over unique ids, dependencies first, within the size limit.
pub fn check_plan(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let whole = parse_plan(text);
    let cut = split_point(data, text);
    let mut parser = PlanStreamParser::default();
    let mut streamed = parser.push(&text[..cut]);
    streamed.extend(parser.push(&text[cut..]));
    assert_eq!(whole.as_ref().ok().map(|p| &p.subtasks), parser.finish().as_ref().ok().map(|p| &p.subtasks), "split at {cut}");
    let Ok(plan) = whole else { return };
    assert_eq!(streamed, plan.subtasks, "subtasks are yielded as they complete, once");
    let max = 1 + data.len() % 8;
    if let Ok(valid) = validate(plan, max) {
        assert!(!valid.subtasks.is_empty() && valid.subtasks.len() <= max);
        let mut seen = HashSet::new();
        for subtask in &valid.subtasks {
            assert!(!subtask.task.trim().is_empty());
            assert!(subtask.depends_on.iter().all(|d| seen.contains(d)), "{} depends on a later or unknown subtask", subtask.id);
            assert!(seen.insert(subtask.id.clone()), "duplicate id {}", subtask.id);
        }
    }
}

/// Cloud responses: an event stream splits into the same lines however the bytes are chunked,
/// and neither the stream nor a JSON body can make the parser panic.
pub fn check_cloud_response(data: &[u8]) {
    const MAX_LINE: usize = 4096;
    let decode = |chunks: &[&[u8]]| -> Result<Vec<SseLine>, String> {
        let mut decoder = SseDecoder::default();
        let mut lines = Vec::new();
        for chunk in chunks {
            lines.extend(decoder.push(chunk, MAX_LINE)?);
        }
        lines.extend(decoder.finish()?);
        Ok(lines)
    };
    let cut = data.first().map_or(0, |b| *b as usize * data.len() / 256);
    let whole = decode(&[data]);
    let split = decode(&[&data[..cut], &data[cut..]]);
    if let (Ok(whole), Ok(split)) = (&whole, &split) {
        assert_eq!(whole, split, "split at {cut}");
        for line in whole {
            if let SseLine::Data(json) = line {
                let _ = parse_json(json);
            }
        }
    }
    let _ = parse_json(data);
}

/// Reads fuzz bytes as configuration values, the way a buggy or hostile app could pass them.
struct Values<'a>(&'a [u8]);

impl Values<'_> {
    fn byte(&mut self) -> u8 {
        let (first, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        *first
    }
    fn float(&mut self) -> f64 {
        match self.byte() % 6 {
            0 => f64::NAN,
            1 => f64::INFINITY,
            2 => -1.0,
            3 => 0.0,
            _ => f64::from(self.byte()) / 10.0,
        }
    }
    fn text(&mut self) -> String {
        let len = (self.byte() % 24) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| self.byte()).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
    fn url(&mut self) -> String {
        let host = ["127.0.0.1", "localhost", "[::1]", "api.example.com", "10.0.0.2", ""][self.byte() as usize % 6];
        let scheme = ["https", "http", "ftp", ""][self.byte() as usize % 4];
        format!("{scheme}://{host}{}", self.text())
    }
    fn flag(&mut self) -> bool {
        self.byte().is_multiple_of(2)
    }
}

/// The configuration decoder: any values give `Ok` or a typed error, never a panic; accepted
/// configurations hold the invariants the rest of the SDK relies on.
pub fn check_config(data: &[u8]) {
    let mut v = Values(data);
    let mut config = ClientConfig::default();
    if v.flag() {
        config.edge = Some(EdgeConfig { max_concurrent_sequences: v.byte() as usize % 3, ..EdgeConfig::new(PathBuf::from(v.text())) });
    }
    if v.flag() {
        let mut cloud = CloudConfig::new(v.url(), v.text());
        cloud.api_key = v.flag().then(|| ApiKey::new(v.text()));
        cloud.price.input_per_million = v.float();
        cloud.price.output_per_million = v.float();
        cloud.timeouts.total = Duration::from_millis(u64::from(v.byte()) * 100);
        cloud.retry.max_attempts = u32::from(v.byte() % 3);
        config.cloud = Some(cloud);
    }
    config.state_dir = v.flag().then(|| PathBuf::from(v.text()));
    config.budgets.per_day = Limits { money: v.flag().then(|| v.float()), cloud_tokens: v.flag().then(|| u64::from(v.byte())), ..Limits::default() };
    config.policy.min_battery_for_cloud = v.float() as f32;
    config.routing = [Routing::Learned, Routing::ByDifficulty, Routing::EdgeOnly, Routing::CloudOnly][v.byte() as usize % 4];
    config.exec.max_query_chars = v.byte() as usize;
    config.exec.planner_config.max_subtasks = v.byte() as usize % 4;
    if config.validate().is_ok() {
        assert!(config.edge.is_some() || config.cloud.is_some());
        assert!((0.0..=1.0).contains(&config.policy.min_battery_for_cloud));
        assert!(config.budgets.per_day.money.is_none_or(|m| m.is_finite() && m >= 0.0));
        if let Some(cloud) = &config.cloud {
            let endpoint = cloud.endpoint().expect("an accepted endpoint parses");
            let loopback = match endpoint.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(name)) => name == "localhost",
                None => false,
            };
            assert!(endpoint.scheme() == "https" || (endpoint.scheme() == "http" && loopback), "{endpoint}");
            assert!(cloud.price.input_per_million.is_finite() && cloud.price.output_per_million >= 0.0);
        }
        if config.budgets.per_day != Limits::default() {
            assert!(config.state_dir.is_some());
        }
    }
}
