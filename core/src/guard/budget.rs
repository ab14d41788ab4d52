//! Budgets as reservations. Before a cloud request is sent, its worst-case cost is reserved
//! against every limit (query, day, month), counting what is already spent and what other
//! requests in flight have reserved; after it, the reservation is replaced by what was actually
//! used. Steps running in parallel therefore can never together cross a hard token or money limit.
//! Time cannot be known before a request runs: the time limits refuse new requests once the time
//! already spent (and reserved) reaches them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::gates::Gate;
use crate::model::Side;
use crate::store::{now_unix_seconds, Store, StoreWriter, UsageRecord, Window};

/// Hard limits on cloud use; `None` is no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    pub cloud_tokens: Option<u64>,
    pub money: Option<f64>,
    pub cloud_time: Option<Duration>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Budgets {
    pub per_query: Limits,
    pub per_day: Limits,
    pub per_month: Limits,
}

/// An amount of cloud use.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Spend {
    pub tokens: u64,
    pub money: f64,
    pub time: Duration,
}

impl Spend {
    fn plus(self, other: Spend) -> Spend {
        Spend { tokens: self.tokens + other.tokens, money: self.money + other.money, time: self.time + other.time }
    }

    fn minus(self, other: Spend) -> Spend {
        Spend { tokens: self.tokens.saturating_sub(other.tokens), money: (self.money - other.money).max(0.0), time: self.time.saturating_sub(other.time) }
    }
}

/// Budget use for a step: the largest consumed fraction of any limit, and whether the step would
/// break one.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BudgetCheck {
    pub used: f64,
    pub would_exceed: bool,
}

impl BudgetCheck {
    fn merge(self, other: BudgetCheck) -> BudgetCheck {
        BudgetCheck { used: self.used.max(other.used), would_exceed: self.would_exceed || other.would_exceed }
    }
}

fn check_limits(limits: &Limits, used: Spend, step: Spend) -> BudgetCheck {
    let mut check = BudgetCheck::default();
    let mut consider = |used: f64, step: f64, limit: f64| {
        check.used = check.used.max(if limit > 0.0 { (used / limit).min(1.0) } else { 1.0 });
        check.would_exceed |= used >= limit || used + step > limit;
    };
    if let Some(limit) = limits.cloud_tokens {
        consider(used.tokens as f64, step.tokens as f64, limit as f64);
    }
    if let Some(limit) = limits.money {
        consider(used.money, step.money, limit);
    }
    if let Some(limit) = limits.cloud_time {
        consider(used.time.as_secs_f64(), step.time.as_secs_f64(), limit.as_secs_f64());
    }
    check
}

/// One query's cloud use: spent (settled) and reserved (in flight).
#[derive(Debug, Default)]
pub struct QueryBudget {
    state: Mutex<(Spend, Spend)>,
}

impl QueryBudget {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// What the query's cloud requests have used so far (settled ones).
    pub fn spent(&self) -> Spend {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).0
    }

    fn committed(&self) -> Spend {
        let (spent, reserved) = *self.state.lock().unwrap_or_else(|p| p.into_inner());
        spent.plus(reserved)
    }
}

/// Spending against the configured budgets, in flight and settled.
pub struct Ledger {
    budgets: Budgets,
    writer: Option<Arc<StoreWriter>>,
    /// Reserved by requests in flight, across queries (counts against the day and the month).
    outstanding: Mutex<Spend>,
}

impl Ledger {
    /// Per-day and per-month limits need the store (the client's validation says so).
    pub fn new(budgets: Budgets, writer: Option<Arc<StoreWriter>>) -> Arc<Self> {
        Arc::new(Self { budgets, writer, outstanding: Mutex::new(Spend::default()) })
    }

    fn store(&self) -> Option<&Store> {
        self.writer.as_deref().map(StoreWriter::store)
    }

    pub fn budgets(&self) -> Budgets {
        self.budgets
    }

    pub fn writer(&self) -> Option<&Arc<StoreWriter>> {
        self.writer.as_ref()
    }

    /// Why the windows' spending is unknown, if it is and a window has limits.
    pub fn spending_unknown(&self) -> Option<String> {
        let limited = self.budgets.per_day != Limits::default() || self.budgets.per_month != Limits::default();
        self.store().filter(|_| limited).and_then(Store::spending_unknown)
    }

    /// Budget use if `step` were added now, counting spending and every reservation.
    pub fn check(&self, query: &QueryBudget, step: Spend) -> BudgetCheck {
        let outstanding = *self.outstanding.lock().unwrap_or_else(|p| p.into_inner());
        self.check_with(query, outstanding, step)
    }

    fn check_with(&self, query: &QueryBudget, outstanding: Spend, step: Spend) -> BudgetCheck {
        let mut check = check_limits(&self.budgets.per_query, query.committed(), step);
        if let Some(store) = self.store() {
            let now = now_unix_seconds();
            for (window, limits) in [(Window::Day, &self.budgets.per_day), (Window::Month, &self.budgets.per_month)] {
                if *limits == Limits::default() {
                    continue;
                }
                check = check.merge(match store.window_totals(window, now) {
                    Ok(t) => {
                        let stored = Spend { tokens: t.cloud_tokens, money: t.cost, time: Duration::from_millis(t.cloud_millis) };
                        check_limits(limits, stored.plus(outstanding), step)
                    }
                    // Unreadable totals under a limit count as exhausted: fail closed on money.
                    Err(_) => BudgetCheck { used: 1.0, would_exceed: true },
                });
            }
        }
        check
    }

    /// Reserves `amount` if no limit would be exceeded; the check and the reservation are one step,
    /// so concurrent requests cannot both take the last of a budget.
    pub fn reserve(self: &Arc<Self>, query: &Arc<QueryBudget>, amount: Spend) -> Result<Reservation, Gate> {
        if self.spending_unknown().is_some() {
            return Err(Gate::SpendingUnknown);
        }
        let mut outstanding = self.outstanding.lock().unwrap_or_else(|p| p.into_inner());
        if self.check_with(query, *outstanding, amount).would_exceed {
            return Err(Gate::BudgetExhausted);
        }
        *outstanding = outstanding.plus(amount);
        let mut state = query.state.lock().unwrap_or_else(|p| p.into_inner());
        state.1 = state.1.plus(amount);
        Ok(Reservation { ledger: self.clone(), query: query.clone(), amount, open: true })
    }

    fn release(&self, amount: Spend) {
        let mut outstanding = self.outstanding.lock().unwrap_or_else(|p| p.into_inner());
        *outstanding = outstanding.minus(amount);
    }

    /// Resolves once every settlement made so far is durable.
    pub async fn flushed(&self) {
        if let Some(writer) = &self.writer {
            writer.flushed().await;
        }
    }
}

/// A cloud request's worst-case cost, held until the request is settled. Dropped unsettled, it
/// is released with nothing spent (the request was never sent or got no answer).
pub struct Reservation {
    ledger: Arc<Ledger>,
    query: Arc<QueryBudget>,
    amount: Spend,
    open: bool,
}

impl Reservation {
    /// Replaces the reservation by what the request used. The query's figures change at once;
    /// the day's and month's once the store has the record (a job on the store's thread), and
    /// the reservation is released only then, so the spending is never counted nowhere.
    pub fn settle(mut self, request_id: String, record: UsageRecord) {
        self.open = false;
        let spend = Spend { tokens: record.prompt_tokens + record.completion_tokens, money: record.cost, time: Duration::from_millis(record.wall_millis) };
        {
            let mut state = self.query.state.lock().unwrap_or_else(|p| p.into_inner());
            state.0 = state.0.plus(spend);
            state.1 = state.1.minus(self.amount);
        }
        let (ledger, amount) = (self.ledger.clone(), self.amount);
        match &self.ledger.writer {
            Some(writer) => writer.submit(move |store| {
                if let Err(e) = store.record(&request_id, &record) {
                    log::error!("cannot record the usage of {request_id}: {e}");
                }
                ledger.release(amount);
            }),
            None => ledger.release(amount),
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.open {
            let mut state = self.query.state.lock().unwrap_or_else(|p| p.into_inner());
            state.1 = state.1.minus(self.amount);
            drop(state);
            self.ledger.release(self.amount);
        }
    }
}

/// A usage record for the cloud at this moment.
pub(crate) fn cloud_record(prompt_tokens: u64, completion_tokens: u64, cost: f64, wall: Duration, estimated: bool) -> UsageRecord {
    UsageRecord { at_unix_seconds: now_unix_seconds(), side: Side::Cloud, prompt_tokens, completion_tokens, cost, wall_millis: wall.as_millis() as u64, estimated }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(n: u64) -> Spend {
        Spend { tokens: n, ..Spend::default() }
    }

    fn query_limit(n: u64) -> Arc<Ledger> {
        Ledger::new(Budgets { per_query: Limits { cloud_tokens: Some(n), ..Limits::default() }, ..Budgets::default() }, None)
    }

    #[test]
    fn concurrent_reservations_cannot_cross_a_limit_together() {
        let ledger = query_limit(1_000);
        let query = QueryBudget::new();
        let first = ledger.reserve(&query, tokens(600)).unwrap();
        assert_eq!(ledger.reserve(&query, tokens(600)).err(), Some(Gate::BudgetExhausted), "600 reserved + 600 > 1000");
        let second = ledger.reserve(&query, tokens(400)).unwrap();
        assert!(ledger.reserve(&query, tokens(1)).is_err(), "fully reserved");
        first.settle("a".into(), cloud_record(100, 50, 0.0, Duration::from_millis(10), false));
        assert_eq!(query.spent().tokens, 150);
        assert!(ledger.reserve(&query, tokens(450)).is_ok(), "150 spent + 400 reserved + 450 = 1000");
        drop(second);
        assert_eq!(query.committed().tokens, 150, "an unsettled reservation is released");
    }

    #[test]
    fn time_limits_refuse_once_spent() {
        let ledger = Ledger::new(Budgets { per_query: Limits { cloud_time: Some(Duration::from_secs(2)), ..Limits::default() }, ..Budgets::default() }, None);
        let query = QueryBudget::new();
        ledger.reserve(&query, Spend::default()).unwrap().settle("a".into(), cloud_record(1, 1, 0.0, Duration::from_millis(1_500), false));
        assert!(ledger.check(&query, Spend::default()).used > 0.7);
        ledger.reserve(&query, Spend::default()).unwrap().settle("b".into(), cloud_record(1, 1, 0.0, Duration::from_millis(600), false));
        assert_eq!(ledger.reserve(&query, Spend::default()).err(), Some(Gate::BudgetExhausted), "2.1 s spent of 2 s");
    }

    #[test]
    fn a_damaged_store_fails_closed_under_window_limits_until_reset() {
        let dir = std::env::temp_dir().join(format!("hybridflow-ledger-damaged-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let store = Store::open(&dir).unwrap();
            store.record("spent", &cloud_record(500, 0, 0.4, Duration::from_secs(1), false)).unwrap();
        }
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                std::fs::write(&path, vec![0x5a; 256]).unwrap();
            }
        }
        let writer = Arc::new(StoreWriter::start(Arc::new(Store::open(&dir).unwrap())).unwrap());
        let day = Budgets { per_day: Limits { money: Some(1.0), ..Limits::default() }, ..Budgets::default() };
        let limited = Ledger::new(day, Some(writer.clone()));
        assert_eq!(limited.reserve(&QueryBudget::new(), Spend::default()).err(), Some(Gate::SpendingUnknown), "what was spent today is unknown");
        let per_query_only = Ledger::new(Budgets { per_query: Limits { money: Some(1.0), ..Limits::default() }, ..Budgets::default() }, Some(writer.clone()));
        assert!(per_query_only.reserve(&QueryBudget::new(), Spend::default()).is_ok(), "no window limit to protect");
        writer.store().reset_budgets().unwrap();
        assert!(limited.reserve(&QueryBudget::new(), Spend::default()).is_ok(), "the app reset the budgets");
        drop((limited, per_query_only, writer));
        let _ = std::fs::remove_dir_all(&dir);
        for entry in std::fs::read_dir(std::env::temp_dir()).unwrap().filter_map(Result::ok) {
            if entry.file_name().to_string_lossy().starts_with(&format!("hybridflow-ledger-damaged-{}.damaged-", std::process::id())) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }

    #[test]
    fn a_zero_limit_forbids_everything() {
        let ledger = Ledger::new(Budgets { per_query: Limits { money: Some(0.0), ..Limits::default() }, ..Budgets::default() }, None);
        assert!(ledger.reserve(&QueryBudget::new(), Spend::default()).is_err());
    }
}
