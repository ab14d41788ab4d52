//! Renders a query's events as text: plan, per-subtask route and progress, answer, totals.

use std::io::Write;

use hybridflow_core::exec::{Event, StepName, SubtaskOutcome, Totals};
use hybridflow_core::model::Side;

#[derive(Default)]
pub struct View {
    /// Which stream's text is being printed (to start a new line when it changes).
    streaming: Option<Option<String>>,
}

fn side(side: Side) -> &'static str {
    match side {
        Side::Edge => "edge",
        Side::Cloud => "cloud",
    }
}

fn first_line(text: &str, max: usize) -> String {
    let line = text.trim().lines().next().unwrap_or("");
    if line.chars().count() > max {
        format!("{}…", line.chars().take(max).collect::<String>())
    } else {
        line.to_owned()
    }
}

fn totals_line(t: &Totals) -> String {
    format!(
        "-- edge: {} calls, {}+{} tokens | cloud: {} calls, {}+{} tokens, cost {:.6} | {} subtasks ({} on cloud, {} failed) | {:.2} s",
        t.edge.calls, t.edge.prompt_tokens, t.edge.completion_tokens,
        t.cloud.calls, t.cloud.prompt_tokens, t.cloud.completion_tokens, t.cloud_cost,
        t.subtasks, t.subtasks_on_cloud, t.failed_subtasks, t.wall_time.as_secs_f64()
    )
}

impl View {
    fn end_stream(&mut self) {
        if self.streaming.take().is_some() {
            println!();
        }
    }

    pub fn show(&mut self, event: &Event) {
        match event {
            Event::PlanningStarted { side: s, reason, served_by } => {
                self.end_stream();
                println!("planning on the {} ({reason}) [{served_by}]...", side(*s));
            }
            Event::PlanReady { plan, direct } => {
                self.end_stream();
                match direct {
                    Some(reason) => println!("plan: answer directly ({})", serde_json::to_string(reason).unwrap_or_default()),
                    None => {
                        println!("plan: {} subtasks", plan.subtasks.len());
                        for s in &plan.subtasks {
                            let deps = if s.depends_on.is_empty() { String::new() } else { format!("  <- {}", s.depends_on.join(", ")) };
                            println!("  {} [{:?}, {:?}] {}{deps}", s.id, s.kind, s.difficulty, s.task);
                        }
                    }
                }
                for diagnostic in &plan.diagnostics {
                    println!("  repaired: {}", serde_json::to_string(diagnostic).unwrap_or_default());
                }
            }
            Event::SubtaskStarted { id, side: s, reason, attempt, served_by, .. } => {
                self.end_stream();
                let again = if *attempt > 1 { format!(" (attempt {attempt})") } else { String::new() };
                println!("> {id} on the {}{again}: {reason} [{served_by}]", side(*s));
            }
            Event::AnswerStarted { side: s, reason, served_by, .. } => {
                self.end_stream();
                println!("answer on the {} ({reason}) [{served_by}]:", side(*s));
            }
            Event::CloudRefused { step, gate } => {
                self.end_stream();
                let step = match step {
                    StepName::Plan => "planning".to_string(),
                    StepName::Subtask { id } => id.clone(),
                    StepName::Answer => "the answer".to_string(),
                };
                println!("! the cloud request of {step} was not sent: gate {gate:?}");
            }
            Event::Token { subtask_id: id, text } => {
                // Subtask text shows as progress dots; the answer streams in full.
                if self.streaming.as_ref() != Some(id) {
                    self.end_stream();
                    self.streaming = Some(id.clone());
                    if let Some(id) = id {
                        print!("  {id} ");
                    }
                }
                match id {
                    Some(_) => print!("."),
                    None => print!("{text}"),
                }
                let _ = std::io::stdout().flush();
            }
            Event::AnswerReset => {
                self.end_stream();
                println!("! the answer so far is discarded: it starts again");
            }
            Event::AnswerChecked { confidence, escalated, reason, .. } => {
                self.end_stream();
                let verdict = if *escalated { "escalated to the cloud" } else { "the edge's answer stands" };
                println!("? the edge's confidence (mean token log-probability) {confidence:.3}: {verdict} ({reason})");
            }
            Event::SubtaskFinished { id, report } => {
                self.end_stream();
                let place = report.side.map_or("-", side);
                match &report.outcome {
                    SubtaskOutcome::Done { text } => println!(
                        "= {id} done on the {place} in {:.2} s, {} tokens: {}",
                        report.latency.as_secs_f64(),
                        report.usage.as_ref().map_or(0, |u| u.completion_tokens),
                        first_line(text, 90)
                    ),
                    SubtaskOutcome::Failed { error } => println!("x {id} failed after {} attempts: {error}", report.attempts),
                    SubtaskOutcome::Skipped { failed_dependency } => println!("x {id} skipped: {failed_dependency} failed"),
                }
            }
            Event::Answer { text, totals, .. } => {
                let streamed_as_answer = self.streaming == Some(None);
                self.end_stream();
                if !streamed_as_answer {
                    println!("answer:\n{}", text.trim());
                }
                println!("{}", totals_line(totals));
            }
        }
    }
}
