//! [`Registry`]: the orchestrators and activities a node can run, by name.

use durable_core::{
    Error, FailureDetails, OrchestrationContext, OrchestratorFn, Payload, RuntimeStatus, codes, event_key,
    orchestrator_fn,
};
use durable_store::LimitCharge;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

/// What an activity's future yields.
pub type ActivityOutput = Result<Option<Payload>, FailureDetails>;

/// A boxed running activity.
pub type ActivityFuture = Pin<Box<dyn Future<Output = ActivityOutput> + Send>>;

/// A registered activity: builds the future from its context and raw input.
pub type ActivityFn = Arc<dyn Fn(ActivityContext, Option<Payload>) -> ActivityFuture + Send + Sync>;

/// What an activity knows about the call it serves.
#[derive(Clone, Debug)]
pub struct ActivityContext {
    /// The instance that scheduled the activity.
    pub instance_id: String,
    /// The execution that scheduled it.
    pub execution_id: String,
    /// The activity name.
    pub name: String,
    /// The `TaskScheduled` sequence number.
    pub task_id: u32,
    /// 1 on the first run; higher when the activity is re-run after a crash or a lost lease.
    pub attempt: u32,
}

impl ActivityContext {
    /// A key that is the same for every run of this activity call and different for every other
    /// call: pass it to external systems to make at-least-once execution safe.
    pub fn idempotency_key(&self) -> String {
        format!("{}:{}:{}", self.instance_id, self.execution_id, self.task_id)
    }
}

/// Why an [`EventHook`] or a [`StartGuard`] refused what a client sent: a message for the
/// caller, who gets it as invalid input (HTTP 400). Nothing is stored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Rejected(pub String);

impl From<String> for Rejected {
    fn from(message: String) -> Self {
        Rejected(message)
    }
}

impl From<&str> for Rejected {
    fn from(message: &str) -> Self {
        Rejected(message.to_owned())
    }
}

/// Transforms or rejects the data of an event raised through the client before it is stored:
/// `(instance_id, data) -> data`; a [`Rejected`] goes back to the caller as invalid input.
/// Use it to keep secrets out of history (e.g. store a MAC of a guessed code, not the code).
pub type EventHook = Arc<dyn Fn(&str, Option<Payload>) -> Result<Option<Payload>, Rejected> + Send + Sync>;

/// What a [`StartGuard`] sees of a start request.
#[derive(Clone, Copy, Debug)]
pub struct StartRequest<'a> {
    /// The orchestrator to start.
    pub orchestrator: &'a str,
    /// The id the instance will have.
    pub instance_id: &'a str,
    /// Its input (raw JSON).
    pub input: Option<&'a Payload>,
    /// The address of the client that asked (HTTP starts), when known.
    pub client_addr: Option<IpAddr>,
}

/// Checks a start before its instance exists: a [`Rejected`] refuses it as invalid input
/// (nothing is created); `Ok(charges)` lets it through after charging the rate limits (kept
/// in the store, in the transaction that creates the instance; a limit that refuses makes the
/// start fail with a rate-limit error, and nothing is created).
pub type StartGuard = Arc<dyn Fn(&StartRequest<'_>) -> Result<Vec<LimitCharge>, Rejected> + Send + Sync>;

/// An instance that has just finished (its terminal turn is committed), as a [`FinishedHook`]
/// sees it.
#[derive(Clone, Debug)]
pub struct FinishedInstance {
    /// The id.
    pub instance_id: String,
    /// The orchestrator.
    pub name: String,
    /// Its input.
    pub input: Option<Payload>,
    /// Completed, Failed or Terminated.
    pub status: RuntimeStatus,
    /// Output (Completed) or reason (Terminated).
    pub output: Option<Payload>,
    /// The last custom status.
    pub custom_status: Option<Payload>,
}

/// Called on the node that committed an instance's terminal turn, after the commit, with a
/// client of that node. Best effort and not durable: it runs at most once per finish and not
/// at all if the node stops right after the commit, so use it for work whose loss is harmless
/// (e.g. giving back reserved rate-limit units). It must return quickly (spawn anything slow).
pub type FinishedHook = Arc<dyn Fn(&crate::Client, FinishedInstance) + Send + Sync>;

/// Orchestrators and activities by name.
#[derive(Clone, Default)]
pub struct Registry {
    orchestrators: HashMap<String, OrchestratorFn>,
    activities: HashMap<String, ActivityFn>,
    /// Keyed by (orchestrator name, [`event_key`] of the event name).
    event_hooks: HashMap<(String, String), EventHook>,
    start_guards: HashMap<String, StartGuard>,
    finished_hooks: HashMap<String, FinishedHook>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Registers `f` as the orchestrator `name`:
    /// `async fn(OrchestrationContext, I) -> Result<O, E>` with a JSON-decodable input and a
    /// JSON-encodable output.
    pub fn orchestrator<F, Fut, I, O, E>(mut self, name: &str, f: F) -> Self
    where
        F: Fn(OrchestrationContext, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, E>> + Send + 'static,
        I: DeserializeOwned,
        O: Serialize,
        E: Into<Error>,
    {
        self.orchestrators.insert(name.to_owned(), orchestrator_fn(name, f));
        self
    }

    /// Registers `f` as the activity `name`: `async fn(ActivityContext, I) -> Result<O, E>`.
    /// Use a closure to give it state (clients, keys): `move |ctx, input| { let s = s.clone(); async move { … } }`.
    pub fn activity<F, Fut, I, O, E>(mut self, name: &str, f: F) -> Self
    where
        F: Fn(ActivityContext, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, E>> + Send + 'static,
        I: DeserializeOwned,
        O: Serialize,
        E: Into<Error>,
    {
        let name_owned = name.to_owned();
        let wrapped: ActivityFn = Arc::new(move |ctx, input| {
            let text = input.as_ref().map_or("null", Payload::as_str);
            match serde_json::from_str::<I>(text) {
                Ok(input) => {
                    let fut = f(ctx, input);
                    Box::pin(async move {
                        match fut.await {
                            Ok(output) => Payload::from_value(&output).map(Some).map_err(|e| {
                                FailureDetails::new(
                                    "OutputError",
                                    format!("cannot serialize the activity output: {e}"),
                                )
                                .non_retriable()
                            }),
                            Err(e) => {
                                let failure: FailureDetails = e.into().into();
                                Err(if failure.error_type == "Error" {
                                    FailureDetails { error_type: "ActivityError".into(), ..failure }
                                } else {
                                    failure
                                })
                            }
                        }
                    })
                }
                Err(e) => {
                    let failure = FailureDetails::new(
                        "InputError",
                        codes::coded(
                            codes::BAD_INPUT,
                            format_args!(
                                "the input of activity '{name_owned}' cannot be decoded as {}: {e}",
                                std::any::type_name::<I>()
                            ),
                        ),
                    )
                    .non_retriable();
                    Box::pin(std::future::ready(Err(failure)))
                }
            }
        });
        self.activities.insert(name.to_owned(), wrapped);
        self
    }

    /// Registers an already wrapped orchestrator.
    pub fn orchestrator_raw(mut self, name: &str, f: OrchestratorFn) -> Self {
        self.orchestrators.insert(name.to_owned(), f);
        self
    }

    /// Registers an already wrapped activity.
    pub fn activity_raw(mut self, name: &str, f: ActivityFn) -> Self {
        self.activities.insert(name.to_owned(), f);
        self
    }

    /// Registers `hook` for events called `event` (case-insensitive) raised on instances of
    /// orchestrator `orchestrator`.
    pub fn with_event_hook(mut self, orchestrator: &str, event: &str, hook: EventHook) -> Self {
        self.event_hooks.insert((orchestrator.to_owned(), event_key(event)), hook);
        self
    }

    /// Whether any orchestrator has a hook for events called `event`.
    pub fn has_event_hooks(&self, event: &str) -> bool {
        if self.event_hooks.is_empty() {
            return false;
        }
        let key = event_key(event);
        self.event_hooks.keys().any(|(_, e)| *e == key)
    }

    /// The hook of `orchestrator` for `event`.
    pub fn event_hook(&self, orchestrator: &str, event: &str) -> Option<EventHook> {
        self.event_hooks.get(&(orchestrator.to_owned(), event_key(event))).cloned()
    }

    /// Registers `guard` to check (and charge rate limits for) every start of orchestrator
    /// `orchestrator` through the client, before the instance is created. Sub-orchestrations
    /// started by other orchestrators are not guarded.
    pub fn with_start_guard(mut self, orchestrator: &str, guard: StartGuard) -> Self {
        self.start_guards.insert(orchestrator.to_owned(), guard);
        self
    }

    /// The start guard of `orchestrator`.
    pub fn start_guard(&self, orchestrator: &str) -> Option<StartGuard> {
        self.start_guards.get(orchestrator).cloned()
    }

    /// Registers `hook` to run when an instance of `orchestrator` finishes (see [`FinishedHook`]).
    pub fn on_finished(mut self, orchestrator: &str, hook: FinishedHook) -> Self {
        self.finished_hooks.insert(orchestrator.to_owned(), hook);
        self
    }

    /// The finished hook of `orchestrator`.
    pub fn finished_hook(&self, orchestrator: &str) -> Option<FinishedHook> {
        self.finished_hooks.get(orchestrator).cloned()
    }

    /// The orchestrator `name`.
    pub fn get_orchestrator(&self, name: &str) -> Option<OrchestratorFn> {
        self.orchestrators.get(name).cloned()
    }

    /// The activity `name`.
    pub fn get_activity(&self, name: &str) -> Option<ActivityFn> {
        self.activities.get(name).cloned()
    }

    /// Whether an orchestrator is registered as `name`.
    pub fn has_orchestrator(&self, name: &str) -> bool {
        self.orchestrators.contains_key(name)
    }

    /// Registered orchestrator names, sorted.
    pub fn orchestrator_names(&self) -> Vec<String> {
        let mut names: Vec<_> = self.orchestrators.keys().cloned().collect();
        names.sort();
        names
    }

    /// Registered activity names, sorted.
    pub fn activity_names(&self) -> Vec<String> {
        let mut names: Vec<_> = self.activities.keys().cloned().collect();
        names.sort();
        names
    }
}

impl durable_core::OrchestratorResolver for Registry {
    fn resolve(&self, name: &str) -> Option<OrchestratorFn> {
        self.get_orchestrator(name)
    }
}
