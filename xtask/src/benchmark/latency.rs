//! Modeled deployment latency: a question's latency recomputed from its calls' recorded tokens
//! under a deployment profile, with the concurrency the scheduler really ran.
//!
//! The structure comes from the question's timeline (when each call started and ended on the test
//! bed). A call that started after others had ended was released by the latest of them (the
//! scheduler starts a step when its parents finish, an edge step when the edge is free): in the
//! model it starts when that call ends. A call that started while another was still streaming
//! (a subtask started from a plan that was still being written) starts at the same point of that
//! call's modeled duration. Each call's modeled duration comes from the profile and its tokens.
//! Limits: a call waits only for the call that released it on the test bed (if another branch
//! becomes slower under the profile, the model does not see that the call also needed it), and a
//! replayed plan arrives whole, so subtasks started from a streaming plan start after it.

use serde::Serialize;

use super::calls::{CallRecord, CallSpan};
use crate::statistics::median;
use hybridflow_core::model::Side;

/// Speeds of one deployment.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Profile {
    pub name: &'static str,
    /// Edge prompt processing, tokens per second.
    pub edge_prefill_tps: f64,
    pub edge_decode_tps: f64,
    /// Cloud: network round trip plus the service's time to first token for a short prompt.
    pub cloud_first_token_s: f64,
    pub cloud_prefill_tps: f64,
    pub cloud_decode_tps: f64,
}

/// A phone and a hosted model, **estimated** from public figures: the edge is Qwen2.5-0.5B Q4_K_M
/// on a recent flagship phone's CPU (llama.cpp reports 25–61 generated tokens/s for its CPU
/// backend on a Snapdragon 8 Gen 3 phone, ggml-org/llama.cpp pull request 12049; a 0.5B Q4_K_M on
/// a laptop CPU measured 10 tokens/s generation and 17 tokens/s prompt in
/// emigazp/companion-alzheimer issue 7, so a phone's prompt speed is taken as 150 tokens/s and its
/// generation as 25 tokens/s); the cloud is a small hosted model behind an HTTPS round trip (0.5 s
/// to the first token, 100 tokens/s, typical of published figures for small hosted models).
pub const PHONE_AND_HOSTED: Profile =
    Profile { name: "phone + hosted (estimated)", edge_prefill_tps: 150.0, edge_decode_tps: 25.0, cloud_first_token_s: 0.5, cloud_prefill_tps: 5_000.0, cloud_decode_tps: 100.0 };

/// The median of the positive values (a speed or a time that was measured).
fn median_positive(values: Vec<f64>) -> Option<f64> {
    median(&values.into_iter().filter(|v| *v > 0.0).collect::<Vec<_>>())
}

/// A line `seconds = fixed + tokens / speed` through (prompt tokens, seconds) points, fitted by
/// Theil–Sen (the median of the pairwise slopes, then the median intercept), so that calls slowed
/// by other work on the machine do not pull it. `None` with fewer than two distinct prompt sizes
/// or a slope that is not positive.
fn first_token_line(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let mut slopes = Vec::new();
    for (i, (x1, y1)) in points.iter().enumerate() {
        for (x2, y2) in &points[i + 1..] {
            if x1 != x2 {
                slopes.push((y2 - y1) / (x2 - x1));
            }
        }
    }
    let slope = median(&slopes).filter(|s| *s > 0.0)?;
    let fixed = median(&points.iter().map(|(x, y)| y - slope * x).collect::<Vec<_>>())?;
    Some((fixed.max(0.0), 1.0 / slope))
}

/// This test bed's own speeds, measured from the recorded calls (medians), to validate the model.
/// The cloud server processes the prompt before its first token, so its first-token time is fitted
/// as a fixed part and a prompt speed (on this test bed a 660-token plan waits about 6 s, a
/// 110-token question about 1 s); the median alone undercut every long prompt.
pub fn test_bed(calls: &[CallRecord]) -> Profile {
    let of = |side: Side| calls.iter().filter(move |c| c.side == side);
    let prefill = |side| median_positive(of(side).filter_map(|c| c.time_to_first_token_ms.map(|t| f64::from(c.prompt_tokens) / (t / 1e3))).collect());
    let decode = |side| median_positive(of(side).map(|c| c.decode_tokens_per_second).collect());
    let cloud_first: Vec<(f64, f64)> = of(Side::Cloud).filter_map(|c| c.time_to_first_token_ms.map(|t| (f64::from(c.prompt_tokens), t / 1e3))).collect();
    let (cloud_first_token_s, cloud_prefill_tps) = first_token_line(&cloud_first)
        .unwrap_or_else(|| (median_positive(cloud_first.iter().map(|(_, t)| *t).collect()).unwrap_or(0.0), f64::INFINITY));
    Profile {
        name: "this test bed (measured)",
        edge_prefill_tps: prefill(Side::Edge).unwrap_or(1.0),
        edge_decode_tps: decode(Side::Edge).unwrap_or(1.0),
        cloud_first_token_s,
        cloud_prefill_tps,
        cloud_decode_tps: decode(Side::Cloud).unwrap_or(1.0),
    }
}

/// How long a call takes under `profile`.
pub fn call_seconds(profile: &Profile, call: &CallRecord) -> f64 {
    let (prompt, completion) = (f64::from(call.prompt_tokens), f64::from(call.completion_tokens));
    let decode_after_first = (completion - 1.0).max(0.0);
    match call.side {
        Side::Edge => prompt / profile.edge_prefill_tps + decode_after_first / profile.edge_decode_tps,
        Side::Cloud => profile.cloud_first_token_s + prompt / profile.cloud_prefill_tps + decode_after_first / profile.cloud_decode_tps,
    }
}

/// The question's latency with each call lasting `modeled(i)` seconds instead of what it took.
pub fn modeled_latency(timeline: &[CallSpan], modeled: impl Fn(usize) -> f64) -> f64 {
    let mut starts = vec![0.0; timeline.len()];
    let mut ends = vec![0.0; timeline.len()];
    for (i, call) in timeline.iter().enumerate() {
        let earlier = &timeline[..i];
        let released_by = (0..i).filter(|&j| earlier[j].end_s <= call.start_s).max_by(|&a, &b| earlier[a].end_s.total_cmp(&earlier[b].end_s));
        let released_at = released_by.map_or(0.0, |j| earlier[j].end_s);
        // A call still streaming when this one started, begun after the release.
        let streaming = (0..i).filter(|&j| earlier[j].start_s >= released_at && earlier[j].start_s < call.start_s && call.start_s < earlier[j].end_s).max_by(|&a, &b| earlier[a].start_s.total_cmp(&earlier[b].start_s));
        starts[i] = match (streaming, released_by) {
            (Some(j), _) => {
                let measured = earlier[j].end_s - earlier[j].start_s;
                let progress = if measured > 0.0 { (call.start_s - earlier[j].start_s) / measured } else { 1.0 };
                starts[j] + progress * (ends[j] - starts[j])
            }
            (None, Some(j)) => ends[j],
            (None, None) => 0.0,
        };
        ends[i] = starts[i] + modeled(i);
    }
    ends.into_iter().fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(start: f64, end: f64) -> CallSpan {
        CallSpan { key: String::new(), side: Side::Edge, start_s: start, end_s: end, replayed: false }
    }

    #[test]
    fn measured_durations_give_back_the_measured_latency() {
        // Plan 0–4 s; subtask a starts at 3 s while the plan streams; b and c in parallel after a;
        // the synthesis after both.
        let timeline = [span(0.0, 4.0), span(3.0, 6.0), span(6.0, 8.0), span(6.0, 9.0), span(9.0, 10.0)];
        let measured = |i: usize| timeline[i].end_s - timeline[i].start_s;
        assert!((modeled_latency(&timeline, measured) - 10.0).abs() < 1e-9);
    }

    #[test]
    fn faster_calls_shorten_the_critical_path_and_keep_the_concurrency() {
        let timeline = [span(0.0, 4.0), span(3.0, 6.0), span(6.0, 8.0), span(6.0, 9.0), span(9.0, 10.0)];
        // Every call twice as fast: everything, overlaps included, takes half the time.
        let half = |i: usize| (timeline[i].end_s - timeline[i].start_s) / 2.0;
        assert!((modeled_latency(&timeline, half) - 5.0).abs() < 1e-9);
        // Only the slow parallel branch (c) gets slower: the path through it grows, b's does not.
        let slow_c = |i: usize| if i == 3 { 10.0 } else { timeline[i].end_s - timeline[i].start_s };
        assert!((modeled_latency(&timeline, slow_c) - 17.0).abs() < 1e-9, "6 + 10 + 1");
    }

    #[test]
    fn a_compressed_timeline_keeps_its_structure() {
        // Replayed calls run a hundred times faster: the same structure, scaled.
        let timeline = [span(0.0, 0.04), span(0.03, 0.06), span(0.06, 0.08), span(0.06, 0.09), span(0.09, 0.1)];
        let recorded = [4.0, 3.0, 2.0, 3.0, 1.0];
        assert!((modeled_latency(&timeline, |i| recorded[i]) - 10.0).abs() < 1e-9);
    }

    #[test]
    fn profile_durations_follow_tokens() {
        let call = CallRecord {
            prompt_tokens: 500,
            completion_tokens: 101,
            time_to_first_token_ms: Some(300.0),
            total_ms: 1300.0,
            decode_tokens_per_second: 100.0,
            ..CallRecord::for_test(Side::Cloud)
        };
        assert!((call_seconds(&PHONE_AND_HOSTED, &call) - (0.5 + 0.1 + 1.0)).abs() < 1e-9);
        let edge = CallRecord { side: Side::Edge, ..call };
        assert!((call_seconds(&PHONE_AND_HOSTED, &edge) - (500.0 / 150.0 + 100.0 / 25.0)).abs() < 1e-9);
        // One cloud call: no line can be fitted, its first-token time is taken whole.
        let bed = test_bed(&[edge.clone(), CallRecord { side: Side::Cloud, ..edge.clone() }]);
        assert!((bed.edge_prefill_tps - 500.0 / 0.3).abs() < 1e-6 && (bed.cloud_first_token_s - 0.3).abs() < 1e-9);
        assert_eq!(bed.cloud_prefill_tps, f64::INFINITY);
    }

    #[test]
    fn the_clouds_first_token_time_grows_with_its_prompt_and_a_slowed_call_does_not_pull_the_fit() {
        let cloud = |prompt_tokens: u32, seconds: f64| CallRecord {
            prompt_tokens,
            completion_tokens: 10,
            time_to_first_token_ms: Some(seconds * 1e3),
            total_ms: seconds * 1e3 + 500.0,
            decode_tokens_per_second: 20.0,
            ..CallRecord::for_test(Side::Cloud)
        };
        // 0.2 s plus 100 prompt tokens a second, and one call at triple its time.
        let mut calls: Vec<CallRecord> = [100, 200, 300, 400, 500, 600, 700].iter().map(|&n| cloud(n, 0.2 + f64::from(n) / 100.0)).collect();
        calls.push(cloud(650, 3.0 * (0.2 + 6.5)));
        let bed = test_bed(&calls);
        assert!((bed.cloud_first_token_s - 0.2).abs() < 0.05, "{bed:?}");
        assert!((bed.cloud_prefill_tps - 100.0).abs() < 5.0, "{bed:?}");
        // The modeled call: the line's first-token time, then decoding.
        assert!((call_seconds(&bed, &cloud(660, 0.0)) - (0.2 + 6.6 + 9.0 / 20.0)).abs() < 0.1);
    }
}
