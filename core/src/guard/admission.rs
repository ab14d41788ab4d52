//! Admission: the cloud guard itself, and the metered stream of an admitted request.

use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use futures::future::BoxFuture;
use futures::{Stream, StreamExt};

use crate::device::{AppPolicy, DeviceState};
use crate::model::cloud::{estimate_prompt_tokens, CircuitBreaker, Price, TrialPermit};
use crate::model::{ChatModel, ChatRequest, Message, ModelError, Role, Side, StreamEvent, TokenCount, TokenStream, Usage};
use super::budget::{cloud_record, BudgetCheck, Budgets, Ledger, QueryBudget, Reservation, Spend};
use super::gates::{Gate, GateInputs, Verdict};

/// Tokens a chat template may add around the messages (role markers, a default system prompt).
const TEMPLATE_TOKENS: u64 = 64;
const TOKENS_PER_MESSAGE: u64 = 8;

/// What the gates and the budgets say about a step, for the router's decision and explanation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GateView {
    pub verdict: Verdict,
    pub budget: BudgetCheck,
}

pub struct CloudGuard {
    cloud_configured: bool,
    device: RwLock<DeviceState>,
    policy: RwLock<AppPolicy>,
    breaker: Option<Arc<CircuitBreaker>>,
    ledger: Arc<Ledger>,
    price: Price,
}

impl CloudGuard {
    /// `breaker` is the cloud model's; `price` the cloud's, for the money limits.
    pub fn new(cloud_configured: bool, policy: AppPolicy, ledger: Arc<Ledger>, breaker: Option<Arc<CircuitBreaker>>, price: Price) -> Self {
        Self { cloud_configured, device: RwLock::new(DeviceState::default()), policy: RwLock::new(policy), breaker, ledger, price }
    }

    /// Default policy and device, no budgets: for benchmarks and tests that study routing.
    pub fn unlimited(cloud_configured: bool) -> Arc<Self> {
        Arc::new(Self::new(cloud_configured, AppPolicy::default(), Ledger::new(Budgets::default(), None), None, Price::default()))
    }

    pub fn set_device_state(&self, state: DeviceState) {
        *self.device.write().unwrap_or_else(|p| p.into_inner()) = state;
    }

    pub fn set_policy(&self, policy: AppPolicy) {
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) = policy;
    }

    pub fn device(&self) -> DeviceState {
        *self.device.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn policy(&self) -> AppPolicy {
        *self.policy.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    pub fn price(&self) -> Price {
        self.price
    }

    /// The gates and budgets for a step of the projected size, without reserving anything.
    /// `texts` are what the step would send that the user or a model wrote.
    pub fn evaluate(&self, texts: &[&str], edge_available: bool, query: &QueryBudget, step: Spend) -> GateView {
        let budget = self.ledger.check(query, step);
        let verdict = super::gates::evaluate(&self.device(), &self.policy(), GateInputs {
            cloud_configured: self.cloud_configured,
            edge_loaded: edge_available,
            breaker_open: self.breaker.as_ref().is_some_and(|b| !b.allows_request()),
            personal_data: texts.iter().any(|t| super::gates::looks_personal(t)),
            budget_exhausted: budget.would_exceed,
            spending_unknown: self.ledger.spending_unknown().is_some(),
        });
        GateView { verdict, budget }
    }

    /// The most a request can cost: every byte of its messages a token, plus the chat template,
    /// plus `max_tokens` of output.
    pub fn worst_case(&self, request: &ChatRequest) -> Spend {
        let prompt = request.messages.iter().map(|m| m.content.len() as u64 + TOKENS_PER_MESSAGE).sum::<u64>() + TEMPLATE_TOKENS;
        let completion = u64::from(request.max_tokens);
        Spend { tokens: prompt + completion, money: self.price.cost_of(prompt, completion), time: std::time::Duration::ZERO }
    }

    /// The enforcement point: admits `request` to the cloud now, or says which gate refuses it.
    /// `request_id` is unique per query, step and attempt (the store counts it once).
    pub fn admit(&self, request_id: String, request: &ChatRequest, query: &Arc<QueryBudget>) -> Result<CloudPermit, Gate> {
        let texts = authored_texts(&request.messages);
        let gates = super::gates::evaluate(&self.device(), &self.policy(), GateInputs {
            cloud_configured: self.cloud_configured,
            edge_loaded: true,
            breaker_open: false,
            personal_data: texts.iter().any(|t| super::gates::looks_personal(t)),
            budget_exhausted: false,
            spending_unknown: false,
        });
        if let Verdict::EdgeOnly(gate) = gates {
            return Err(gate);
        }
        let trial = match &self.breaker {
            Some(breaker) => Some(breaker.try_acquire().ok_or(Gate::CircuitOpen)?),
            None => None,
        };
        let reservation = self.ledger.reserve(query, self.worst_case(request))?;
        Ok(CloudPermit { request_id, reservation, trial, price: self.price })
    }
}

/// The right to send one request to the cloud, with its reservation.
pub struct CloudPermit {
    request_id: String,
    reservation: Reservation,
    /// Held while the breaker's half-open trial is this request.
    trial: Option<TrialPermit>,
    price: Price,
}

impl CloudPermit {
    /// Sends the request; the stream that comes back settles the reservation however it ends.
    pub async fn stream(self, model: &dyn ChatModel, request: ChatRequest) -> Result<TokenStream, ModelError> {
        let prompt_estimate = u64::from(estimate_prompt_tokens(&request));
        let started = Instant::now();
        // Dropped while the request is out (the caller was cancelled), the provider may have
        // processed the prompt: bill its estimate. An error answer bills nothing.
        let mut sending = Sending(Some(self), prompt_estimate, started);
        let outcome = model.stream(request).await;
        let permit = sending.0.take().expect("taken only here");
        let inner = outcome?;
        let cancel = inner.cancel_handle();
        let metered = Metered { inner, permit: Some(permit), prompt_estimate, deltas: 0, started };
        Ok(TokenStream::new(metered.boxed(), cancel))
    }

    fn settle(self, prompt: u64, completion: u64, wall: std::time::Duration, estimated: bool) {
        let cost = self.price.cost_of(prompt, completion);
        drop(self.trial);
        self.reservation.settle(self.request_id, cloud_record(prompt, completion, cost, wall, estimated));
    }
}

/// A permit whose request is being sent.
struct Sending(Option<CloudPermit>, u64, Instant);

impl Drop for Sending {
    fn drop(&mut self) {
        if let Some(permit) = self.0.take() {
            permit.settle(self.1, 0, self.2.elapsed(), true);
        }
    }
}

/// The cloud model with one admitted request to make, for code that takes a model (the planner).
/// A second request through it is refused: it needs its own admission.
pub struct AdmittedCloud {
    model: Arc<dyn ChatModel>,
    permit: std::sync::Mutex<Option<CloudPermit>>,
}

impl AdmittedCloud {
    pub fn new(model: Arc<dyn ChatModel>, permit: CloudPermit) -> Self {
        Self { model, permit: std::sync::Mutex::new(Some(permit)) }
    }
}

impl ChatModel for AdmittedCloud {
    fn side(&self) -> Side {
        Side::Cloud
    }

    fn name(&self) -> &str {
        self.model.name()
    }

    fn served_by(&self) -> String {
        self.model.served_by()
    }

    fn stream(&self, request: ChatRequest) -> BoxFuture<'_, Result<TokenStream, ModelError>> {
        let permit = self.permit.lock().unwrap_or_else(|p| p.into_inner()).take();
        Box::pin(async move {
            match permit {
                Some(permit) => permit.stream(self.model.as_ref(), request).await,
                None => Err(ModelError::InvalidRequest("this cloud request was not admitted by the guard".into())),
            }
        })
    }

    fn cost(&self, usage: &Usage) -> f64 {
        self.model.cost(usage)
    }
}

/// A cloud stream that bills what it received: the server's usage when it sent one, otherwise
/// the prompt estimate plus one token per streamed delta, marked estimated.
struct Metered {
    inner: TokenStream,
    permit: Option<CloudPermit>,
    prompt_estimate: u64,
    deltas: u64,
    started: Instant,
}

impl Metered {
    fn settle(&mut self, reported: Option<&Usage>) {
        let Some(permit) = self.permit.take() else { return };
        let (prompt, completion, estimated, wall) = match reported {
            Some(u) => (u64::from(u.prompt_tokens), u64::from(u.completion_tokens), u.token_count == TokenCount::Estimated, u.total_time),
            None => (self.prompt_estimate, self.deltas, true, self.started.elapsed()),
        };
        permit.settle(prompt, completion, wall, estimated);
    }
}

impl Stream for Metered {
    type Item = Result<StreamEvent, ModelError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = self.inner.poll_next_unpin(cx);
        match &item {
            Poll::Ready(Some(Ok(StreamEvent::Delta(_)))) => self.deltas += 1,
            Poll::Ready(Some(Ok(StreamEvent::Finished(usage)))) => {
                let usage = usage.clone();
                self.settle(Some(&usage));
            }
            Poll::Ready(Some(Err(_)) | None) => self.settle(None),
            Poll::Pending => {}
        }
        item
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        self.settle(None);
    }
}

/// The text of messages that the user or a model wrote (system prompts are the SDK's own).
fn authored_texts(messages: &[Message]) -> Vec<&str> {
    messages.iter().filter(|m| m.role != Role::System).map(|m| m.content.as_str()).collect()
}
