//! Persistence in sled: budget consumption and router statistics, across restarts and crashes.
//!
//! A usage record is keyed by a request id and applied in one transaction with the window totals
//! it adds to, then flushed before `record` returns: an acknowledged record survives a crash, and a
//! record replayed after a crash (same id) is not counted twice. The schema is versioned; a corrupt
//! or incompatible database is moved aside and rebuilt, with a warning, never a crash. A rebuilt
//! store fails closed: it is marked "spending unknown" (durably) until the app resets the budgets,
//! so a damaged file cannot reset the day's and month's spending to zero.
//!
//! Writes go through [`StoreWriter`], one thread that owns the fsyncs, so no async worker of the
//! SDK ever blocks on the disk.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use crate::model::Side;

pub const SCHEMA_VERSION: u32 = 1;
const SCHEMA_KEY: &[u8] = b"schema_version";
const STATS_KEY: &[u8] = b"router_stats";
/// Present (with the reason) while the spending of the current windows is unknown.
const SPENDING_UNKNOWN_KEY: &[u8] = b"spending_unknown";
const ACKNOWLEDGED_FILE: &str = "acknowledged";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sled(#[from] sled::Error),
    #[error("file system: {0}")]
    Io(#[from] std::io::Error),
    #[error("stored value is unreadable: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("the database at {0} is in use by another open client")]
    InUse(String),
}

/// Why an existing database cannot be opened as it is.
enum OpenFailure {
    /// Another handle holds its lock (another client on the same directory, or one not yet
    /// closed): not damage, so nothing is moved aside.
    InUse,
    Damaged(String),
}

impl From<String> for OpenFailure {
    fn from(reason: String) -> Self {
        Self::Damaged(reason)
    }
}

/// One generation to account for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord {
    pub at_unix_seconds: u64,
    pub side: Side,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost: f64,
    pub wall_millis: u64,
    /// Counted by HybridFlow (a cut stream, no usage from the server), not reported by it.
    #[serde(default)]
    pub estimated: bool,
}

/// Consumption in one time window (cloud usage only: the edge costs no budget).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Spending {
    pub cloud_tokens: u64,
    pub cost: f64,
    pub cloud_millis: u64,
    pub cloud_requests: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    Day,
    Month,
}

/// UTC day and month keys of a unix time (civil-from-days, Howard Hinnant's algorithm).
pub fn window_key(window: Window, unix_seconds: u64) -> String {
    let days = (unix_seconds / 86_400) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let doe = days - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    match window {
        Window::Day => format!("d:{year:04}-{month:02}-{day:02}"),
        Window::Month => format!("m:{year:04}-{month:02}"),
    }
}

pub fn now_unix_seconds() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

pub struct Store {
    db: sled::Db,
    usage: sled::Tree,
    totals: sled::Tree,
    /// Usage records acknowledged so far, mirrored in the `acknowledged` file beside sled's: a
    /// database that reopens with fewer records lost some (sled replays a truncated log
    /// without complaint), and is treated as damaged.
    acknowledged: Mutex<u64>,
    acknowledged_path: PathBuf,
    /// Set when the database had to be rebuilt, with why.
    recovered: Option<String>,
    /// Mirrors [`SPENDING_UNKNOWN_KEY`].
    spending_unknown: Mutex<Option<String>>,
}

impl Store {
    /// Opens (or creates) the store in `dir`; rebuilds it if it is corrupt or of another schema.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        match Self::try_open(dir) {
            Ok(store) => Ok(store),
            Err(OpenFailure::InUse) => Err(StoreError::InUse(dir.display().to_string())),
            Err(OpenFailure::Damaged(reason)) => {
                let aside = aside_path(dir);
                log::warn!("HybridFlow store at {} is unusable ({reason}); moved to {} and rebuilt", dir.display(), aside.display());
                if dir.exists() {
                    std::fs::rename(dir, &aside)?;
                }
                let mut store = match Self::try_open(dir) {
                    Ok(store) => store,
                    Err(OpenFailure::InUse) => return Err(StoreError::InUse(dir.display().to_string())),
                    Err(OpenFailure::Damaged(reason)) => return Err(StoreError::Io(std::io::Error::other(reason))),
                };
                let unknown = format!("the budget store was rebuilt ({reason}); spending before that is unknown");
                store.db.insert(SPENDING_UNKNOWN_KEY, unknown.as_bytes())?;
                store.db.flush()?;
                *store.spending_unknown.get_mut().unwrap_or_else(|p| p.into_inner()) = Some(unknown);
                store.recovered = Some(reason);
                Ok(store)
            }
        }
    }

    fn try_open(dir: &Path) -> Result<Self, OpenFailure> {
        // Read first: an empty database is new only if nothing was ever acknowledged in it (a
        // data file truncated to nothing opens as an empty database).
        let acknowledged_path = dir.join(ACKNOWLEDGED_FILE);
        let acknowledged = match std::fs::read_to_string(&acknowledged_path) {
            // The newline ends a complete write: a truncated count lacks it.
            Ok(text) => text.strip_suffix('\n').and_then(|n| n.parse::<u64>().ok()).ok_or_else(|| format!("unreadable {ACKNOWLEDGED_FILE} file"))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(format!("cannot read {ACKNOWLEDGED_FILE}: {e}").into()),
        };
        // sled reports most damage as errors but may panic on some: both mean "unusable".
        let opened = std::panic::catch_unwind(|| sled::Config::new().path(dir).open());
        let db = match opened {
            Ok(Ok(db)) => db,
            // sled says so only in words: its lock error is a plain I/O error.
            Ok(Err(sled::Error::Io(e))) if e.to_string().contains("could not acquire lock") => return Err(OpenFailure::InUse),
            Ok(Err(e)) => return Err(format!("cannot open: {e}").into()),
            Err(_) => return Err(OpenFailure::Damaged("the database engine panicked while opening it".into())),
        };
        match db.get(SCHEMA_KEY).map_err(|e| e.to_string())? {
            None if acknowledged == 0 && db.tree_names().len() <= 1 && db.is_empty() => {
                db.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_le_bytes()).map_err(|e| e.to_string())?;
                db.flush().map_err(|e| e.to_string())?;
            }
            None => return Err(OpenFailure::Damaged("no schema version".into())),
            Some(v) if v.as_ref() == SCHEMA_VERSION.to_le_bytes() => {}
            Some(v) => return Err(format!("schema version {:?}, this SDK uses {SCHEMA_VERSION}", v.as_ref()).into()),
        }
        let usage = db.open_tree("usage").map_err(|e| e.to_string())?;
        let totals = db.open_tree("totals").map_err(|e| e.to_string())?;
        if (usage.len() as u64) < acknowledged {
            return Err(format!("{} usage records where {acknowledged} were acknowledged (truncated or damaged file)", usage.len()).into());
        }
        // Every stored value must decode: a partially damaged file is rebuilt, not half-trusted.
        for entry in totals.iter() {
            let (_, value) = entry.map_err(|e| e.to_string())?;
            serde_json::from_slice::<Spending>(&value).map_err(|e| format!("damaged totals: {e}"))?;
        }
        let spending_unknown = db.get(SPENDING_UNKNOWN_KEY).map_err(|e| e.to_string())?.map(|v| String::from_utf8_lossy(&v).into_owned());
        Ok(Self { db, usage, totals, acknowledged: Mutex::new(acknowledged), acknowledged_path, recovered: None, spending_unknown: Mutex::new(spending_unknown) })
    }

    pub fn recovered(&self) -> Option<&str> {
        self.recovered.as_deref()
    }

    /// Why the current windows' spending is unknown (a rebuilt store), until [`Self::reset_budgets`].
    pub fn spending_unknown(&self) -> Option<String> {
        self.spending_unknown.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Accounts for one generation, exactly once per `request_id`. Returns whether it was new.
    /// Durable when it returns.
    pub fn record(&self, request_id: &str, record: &UsageRecord) -> Result<bool, StoreError> {
        let encoded = serde_json::to_vec(record)?;
        let keys = [window_key(Window::Day, record.at_unix_seconds), window_key(Window::Month, record.at_unix_seconds)];
        let outcome: Result<bool, TransactionError<serde_json::Error>> = (&self.usage, &self.totals).transaction(|(usage, totals)| {
            if usage.get(request_id)?.is_some() {
                return Ok(false);
            }
            usage.insert(request_id, encoded.as_slice())?;
            if record.side == Side::Cloud {
                for key in &keys {
                    let mut window: Spending = match totals.get(key.as_bytes())? {
                        Some(v) => serde_json::from_slice(&v).map_err(ConflictableTransactionError::Abort)?,
                        None => Spending::default(),
                    };
                    window.cloud_tokens += record.prompt_tokens + record.completion_tokens;
                    window.cost += record.cost;
                    window.cloud_millis += record.wall_millis;
                    window.cloud_requests += 1;
                    totals.insert(key.as_bytes(), serde_json::to_vec(&window).map_err(ConflictableTransactionError::Abort)?)?;
                }
            }
            Ok(true)
        });
        let new = match outcome {
            Ok(new) => new,
            Err(TransactionError::Abort(e)) => return Err(e.into()),
            Err(TransactionError::Storage(e)) => return Err(e.into()),
        };
        self.db.flush()?;
        if new {
            let mut acknowledged = self.acknowledged.lock().unwrap_or_else(|p| p.into_inner());
            *acknowledged += 1;
            self.write_acknowledged(*acknowledged)?;
        }
        Ok(new)
    }

    /// Replaces the count atomically (temporary file, fsync, rename): never half written.
    fn write_acknowledged(&self, count: u64) -> Result<(), std::io::Error> {
        let temporary = self.acknowledged_path.with_extension("tmp");
        let mut file = std::fs::File::create(&temporary)?;
        std::io::Write::write_all(&mut file, format!("{count}\n").as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, &self.acknowledged_path)
    }

    pub fn window_totals(&self, window: Window, unix_seconds: u64) -> Result<Spending, StoreError> {
        match self.totals.get(window_key(window, unix_seconds).as_bytes())? {
            Some(value) => Ok(serde_json::from_slice(&value)?),
            None => Ok(Spending::default()),
        }
    }

    /// Number of usage records kept (for tests and diagnostics).
    pub fn records(&self) -> usize {
        self.usage.len()
    }

    /// Every usage record, by request id (for audits and tests).
    pub fn usage_log(&self) -> Result<Vec<(String, UsageRecord)>, StoreError> {
        self.usage
            .iter()
            .map(|entry| {
                let (id, value) = entry?;
                Ok((String::from_utf8_lossy(&id).into_owned(), serde_json::from_slice(&value)?))
            })
            .collect()
    }

    /// Forgets budget consumption, and a "spending unknown" mark with it (the usage log stays,
    /// so replays are still recognised).
    pub fn reset_budgets(&self) -> Result<(), StoreError> {
        self.totals.clear()?;
        self.db.remove(SPENDING_UNKNOWN_KEY)?;
        self.db.flush()?;
        *self.spending_unknown.lock().unwrap_or_else(|p| p.into_inner()) = None;
        Ok(())
    }

    /// The router statistics saved last, if any.
    pub fn load_stats<T: for<'de> Deserialize<'de>>(&self) -> Result<Option<T>, StoreError> {
        match self.db.get(STATS_KEY)? {
            Some(value) => Ok(Some(serde_json::from_slice(&value)?)),
            None => Ok(None),
        }
    }

    pub fn save_stats<T: Serialize>(&self, stats: &T) -> Result<(), StoreError> {
        self.db.insert(STATS_KEY, serde_json::to_vec(stats)?)?;
        Ok(())
    }
}

type Job = Box<dyn FnOnce(&Store) + Send>;

/// The one thread that writes to a [`Store`]: jobs run in the order they were submitted, off the
/// SDK's async workers. Stopping it (or dropping it) waits for the jobs already submitted and
/// then releases its handle on the store.
pub struct StoreWriter {
    /// For reads, which sled serves from memory without blocking on the disk.
    store: std::sync::Arc<Store>,
    jobs: Mutex<Option<std::sync::mpsc::Sender<Job>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl StoreWriter {
    pub fn start(store: std::sync::Arc<Store>) -> Result<Self, StoreError> {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let owned = store.clone();
        let thread = std::thread::Builder::new().name("hybridflow-store".into()).spawn(move || {
            for job in queue {
                job(&owned);
            }
        })?;
        Ok(Self { store, jobs: Mutex::new(Some(jobs)), thread: Mutex::new(Some(thread)) })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Queues a job; it is dropped unrun if the writer has stopped.
    pub fn submit(&self, job: impl FnOnce(&Store) + Send + 'static) {
        if let Some(jobs) = &*self.jobs.lock().unwrap_or_else(|p| p.into_inner()) {
            let _ = jobs.send(Box::new(job));
        }
    }

    /// Runs a job and waits for its result; `None` if the writer has stopped.
    pub async fn run<T: Send + 'static>(&self, job: impl FnOnce(&Store) -> T + Send + 'static) -> Option<T> {
        let (done, result) = tokio::sync::oneshot::channel();
        self.submit(move |store| {
            let _ = done.send(job(store));
        });
        result.await.ok()
    }

    /// Resolves once every job submitted before it has run.
    pub async fn flushed(&self) {
        self.run(|_| ()).await;
    }

    /// Finishes the queued jobs and ends the thread (blocking: call it off the async workers).
    pub fn stop(&self) {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = thread.join();
        }
    }
}

impl Drop for StoreWriter {
    fn drop(&mut self) {
        self.stop();
    }
}

fn aside_path(dir: &Path) -> PathBuf {
    let name = dir.file_name().map_or_else(|| "store".into(), |n| n.to_string_lossy().to_string());
    dir.with_file_name(format!("{name}.damaged-{}", now_unix_seconds()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hybridflow-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn cloud(tokens: u64, cost: f64) -> UsageRecord {
        UsageRecord { at_unix_seconds: 1_795_000_000, side: Side::Cloud, prompt_tokens: tokens, completion_tokens: 0, cost, wall_millis: 100, estimated: false }
    }

    #[test]
    fn window_keys_are_utc_calendar_dates() {
        assert_eq!(window_key(Window::Day, 0), "d:1970-01-01");
        assert_eq!(window_key(Window::Day, 1_795_000_000), "d:2026-11-18");
        assert_eq!(window_key(Window::Month, 1_795_000_000), "m:2026-11");
        assert_eq!(window_key(Window::Day, 951_782_400), "d:2000-02-29");
    }

    #[test]
    fn records_count_once_and_survive_a_reopen() {
        let dir = temp_dir("once");
        {
            let store = Store::open(&dir).unwrap();
            assert!(store.record("q1:s1:1", &cloud(100, 0.5)).unwrap());
            assert!(!store.record("q1:s1:1", &cloud(100, 0.5)).unwrap(), "a replay is a no-op");
            assert!(store.record("q1:s2:1", &cloud(50, 0.25)).unwrap());
            let edge = UsageRecord { side: Side::Edge, ..cloud(999, 0.0) };
            assert!(store.record("q1:s3:1", &edge).unwrap());
        }
        let store = Store::open(&dir).unwrap();
        assert!(store.recovered().is_none());
        let day = store.window_totals(Window::Day, 1_795_000_000).unwrap();
        assert_eq!((day.cloud_tokens, day.cloud_requests), (150, 2), "edge usage costs no budget");
        assert!((day.cost - 0.75).abs() < 1e-9);
        assert_eq!(store.window_totals(Window::Month, 1_795_000_000).unwrap(), day);
        assert_eq!(store.records(), 3);
        store.reset_budgets().unwrap();
        assert_eq!(store.window_totals(Window::Day, 1_795_000_000).unwrap(), Spending::default());
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_corrupt_database_is_moved_aside_and_rebuilt() {
        let dir = temp_dir("corrupt");
        {
            let store = Store::open(&dir).unwrap();
            store.record("a", &cloud(10, 0.1)).unwrap();
        }
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                let len = std::fs::metadata(&path).unwrap().len() as usize;
                let garbage: Vec<u8> = (0..len.max(64)).map(|i| (i * 7 + 13) as u8).collect();
                std::fs::write(&path, garbage).unwrap();
            }
        }
        let store = Store::open(&dir).unwrap();
        assert!(store.recovered().is_some());
        assert_eq!(store.records(), 0);
        assert!(store.record("b", &cloud(1, 0.0)).unwrap(), "the rebuilt store works");
        drop(store);
        // Fails closed: the mark survives a reopen and goes only with a reset.
        let store = Store::open(&dir).unwrap();
        assert!(store.recovered().is_none() && store.spending_unknown().is_some_and(|why| why.contains("rebuilt")));
        store.reset_budgets().unwrap();
        drop(store);
        assert_eq!(Store::open(&dir).unwrap().spending_unknown(), None);
        let parent = dir.parent().unwrap();
        let prefix = format!("{}.damaged-", dir.file_name().unwrap().to_string_lossy());
        let aside: Vec<_> = std::fs::read_dir(parent).unwrap().filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().starts_with(&prefix)).collect();
        assert_eq!(aside.len(), 1, "the damaged copy is kept for diagnosis");
        std::fs::remove_dir_all(aside[0].path()).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_database_in_use_is_reported_not_moved_aside() {
        let dir = temp_dir("in-use");
        let first = Store::open(&dir).unwrap();
        first.record("a", &cloud(10, 0.1)).unwrap();
        assert!(matches!(Store::open(&dir), Err(StoreError::InUse(_))));
        assert_eq!(first.records(), 1, "the open store keeps its data");
        drop(first);
        let parent = dir.parent().unwrap();
        let prefix = format!("{}.damaged-", dir.file_name().unwrap().to_string_lossy());
        assert!(!std::fs::read_dir(parent).unwrap().filter_map(|e| e.ok()).any(|e| e.file_name().to_string_lossy().starts_with(&prefix)), "nothing moved aside");
        let reopened = Store::open(&dir).unwrap();
        assert_eq!((reopened.records(), reopened.recovered(), reopened.spending_unknown()), (1, None, None));
        drop(reopened);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Truncated files (a full disk, a copy cut short): the store is either intact or detected as
    /// damaged and rebuilt, never silently half there.
    #[test]
    fn a_truncated_database_is_intact_or_rebuilt() {
        let mut rebuilt = 0;
        // (kept share of each file, only sled's data file or every file)
        for (keep_percent, only_data) in [(0, false), (10, false), (50, true), (90, true), (99, false), (99, true)] {
            let dir = temp_dir(&format!("truncated-{keep_percent}-{only_data}"));
            {
                let store = Store::open(&dir).unwrap();
                for i in 0..50 {
                    store.record(&format!("r{i}"), &cloud(10, 0.001)).unwrap();
                }
            }
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_file() && (!only_data || path.ends_with("db")) {
                    let len = std::fs::metadata(&path).unwrap().len();
                    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(len * keep_percent / 100).unwrap();
                }
            }
            let store = Store::open(&dir).unwrap();
            match store.recovered() {
                Some(_) => {
                    rebuilt += 1;
                    assert_eq!(store.records(), 0);
                }
                None => {
                    assert_eq!(store.records(), 50, "kept {keep_percent}%: opened without complaint but lost records");
                    let totals = store.window_totals(Window::Day, now_unix_seconds()).unwrap();
                    assert_eq!(totals.cloud_requests, 50);
                }
            }
            assert!(store.record("after", &cloud(1, 0.0)).unwrap(), "usable after opening");
            drop(store);
            let prefix = format!("{}.damaged-", dir.file_name().unwrap().to_string_lossy());
            for entry in std::fs::read_dir(dir.parent().unwrap()).unwrap().filter_map(|e| e.ok()) {
                if entry.file_name().to_string_lossy().starts_with(&prefix) {
                    std::fs::remove_dir_all(entry.path()).unwrap();
                }
            }
            std::fs::remove_dir_all(&dir).unwrap();
        }
        assert!(rebuilt > 0, "no truncation was detected");
    }

    #[tokio::test]
    async fn the_writer_runs_jobs_in_order_off_the_caller_and_releases_the_store() {
        let dir = temp_dir("writer");
        let store = std::sync::Arc::new(Store::open(&dir).unwrap());
        let writer = StoreWriter::start(store).unwrap();
        for i in 0..20 {
            writer.submit(move |store| {
                store.record(&format!("r{i}"), &cloud(1, 0.0)).unwrap();
            });
        }
        let thread = writer.run(|_| std::thread::current().name().map(str::to_owned)).await.unwrap();
        assert_eq!(thread.as_deref(), Some("hybridflow-store"));
        assert_eq!(writer.run(|store| store.records()).await, Some(20), "queued jobs ran before the later one");
        writer.stop();
        assert_eq!(writer.run(|store| store.records()).await, None, "a stopped writer runs nothing");
        drop(writer);
        let reopened = Store::open(&dir).expect("dropping the writer released the database");
        assert_eq!(reopened.records(), 20);
        drop(reopened);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn another_schema_version_is_rebuilt() {
        let dir = temp_dir("schema");
        {
            let db = sled::open(&dir).unwrap();
            db.insert(SCHEMA_KEY, &99u32.to_le_bytes()).unwrap();
            db.flush().unwrap();
        }
        let store = Store::open(&dir).unwrap();
        assert!(store.recovered().unwrap().contains("schema version"));
        drop(store);
        for entry in std::fs::read_dir(dir.parent().unwrap()).unwrap().filter_map(|e| e.ok()) {
            if entry.file_name().to_string_lossy().starts_with(&format!("{}.damaged-", dir.file_name().unwrap().to_string_lossy())) {
                std::fs::remove_dir_all(entry.path()).unwrap();
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
