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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    #[tokio::test]
    async fn calls_run_in_order_on_the_callback_thread_and_survive_a_panic() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let panics = Arc::new(Mutex::new(Vec::new()));
        for i in 0..5 {
            let (seen, panics) = (seen.clone(), panics.clone());
            super::call(
                move || {
                    if i == 2 {
                        panic!("listener {i} threw");
                    }
                    seen.lock().unwrap().push((i, std::thread::current().name().map(str::to_owned)));
                },
                move |panic| panics.lock().unwrap().push(panic),
            );
        }
        super::delivered().await;
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![0, 1, 3, 4], "in order, the panicking one aside");
        assert!(seen.iter().all(|(_, thread)| thread.as_deref() == Some("hybridflow-callbacks")));
        assert_eq!(panics.lock().unwrap().as_slice(), ["listener 2 threw"]);
    }
}
