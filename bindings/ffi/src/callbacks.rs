//! One thread for every call into the app's code: event listeners, load progress and the app's
//! logger. The SDK's async workers only queue a call and go on, so a slow or blocking callback
//! never stalls the engine; calls run in the order they were queued, so a query's events arrive
//! in order. A callback that panics is caught and reported to whoever queued it.

use std::sync::mpsc::{channel, Sender};
use std::sync::{Mutex, OnceLock};

type Call = Box<dyn FnOnce() + Send>;

fn queue() -> &'static Mutex<Sender<Call>> {
    static QUEUE: OnceLock<Mutex<Sender<Call>>> = OnceLock::new();
    QUEUE.get_or_init(|| {
        let (sender, calls) = channel::<Call>();
        std::thread::Builder::new()
            .name("hybridflow-callbacks".into())
            .spawn(move || {
                for call in calls {
                    call();
                }
            })
            .expect("the HybridFlow callback thread could not start (out of threads)");
        Mutex::new(sender)
    })
}

/// Queues `call` for the callback thread. Its panic (a throwing listener) is caught and handed
/// to `on_panic` there.
pub(crate) fn call(call: impl FnOnce() + Send + 'static, on_panic: impl FnOnce(String) + Send + 'static) {
    let guarded = move || {
        if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)) {
            on_panic(crate::error::panic_message(&*payload));
        }
    };
    let _ = queue().lock().unwrap_or_else(|p| p.into_inner()).send(Box::new(guarded));
}

/// Resolves once every call queued before it has run.
pub(crate) async fn delivered() {
    let (done, wait) = tokio::sync::oneshot::channel();
    call(move || { let _ = done.send(()); }, |_| {});
    let _ = wait.await;
}
