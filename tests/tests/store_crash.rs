//! Crash safety of the budget store: a child process records usage in a loop, printing each
//! acknowledged record, and is killed with SIGKILL at a random moment; after each kill the store
//! must hold every acknowledged record (no loss), count each once (no double count, even when the
//! next child replays the last one), and open cleanly. Many rounds.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hybridflow_core::model::Side;
use hybridflow_core::store::{Store, UsageRecord, Window};

const WRITER_ENV: &str = "HYBRIDFLOW_STORE_WRITER_DIR";
const AT: u64 = 1_795_000_000;

fn record() -> UsageRecord {
    UsageRecord { at_unix_seconds: AT, side: Side::Cloud, prompt_tokens: 3, completion_tokens: 4, cost: 0.001, wall_millis: 10, estimated: false }
}

/// The child's body: continue numbering after what is stored, replay the last id first, then
/// record new ones forever, acknowledging each on stdout after `record` returned (durable).
#[test]
fn writer_child() {
    let Ok(dir) = std::env::var(WRITER_ENV) else { return }; // only runs as the crash test's child
    let store = Store::open(std::path::Path::new(&dir)).unwrap();
    let start = store.records();
    if start > 0 {
        store.record(&format!("r{}", start - 1), &record()).unwrap();
    }
    for i in start.. {
        store.record(&format!("r{i}"), &record()).unwrap();
        println!("ack {i}");
    }
}

/// Simple deterministic jitter for the kill moments.
fn kill_delay(round: u64) -> Duration {
    Duration::from_millis(20 + (round.wrapping_mul(2_654_435_761) >> 7) % 180)
}

#[test]
fn acknowledged_records_survive_sigkill_exactly_once() {
    let dir = std::env::temp_dir().join(format!("hybridflow-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let rounds = 25;
    let mut highest_ack: Option<usize> = None;
    for round in 0..rounds {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["writer_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(WRITER_ENV, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut last = None;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(n) = line.strip_prefix("ack ") {
                    last = n.trim().parse::<usize>().ok();
                }
            }
            last
        });
        let started = Instant::now();
        std::thread::sleep(kill_delay(round));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        if let Some(last) = reader.join().unwrap() {
            highest_ack = Some(highest_ack.map_or(last, |h: usize| h.max(last)));
        }

        let store = Store::open(&dir).unwrap();
        assert!(store.recovered().is_none(), "round {round}: store damaged by a kill");
        let records = store.records();
        if let Some(acked) = highest_ack {
            assert!(records > acked, "round {round}: acknowledged r{acked} lost ({records} records)");
        }
        let day = store.window_totals(Window::Day, AT).unwrap();
        assert_eq!(day.cloud_requests as usize, records, "round {round}: totals disagree with the log (double count or loss)");
        assert_eq!(day.cloud_tokens as usize, records * 7, "round {round}");
        assert!(started.elapsed() < Duration::from_secs(30));
    }
    assert!(highest_ack.unwrap_or(0) > 10, "the writers made progress");
    std::fs::remove_dir_all(&dir).unwrap();
}
