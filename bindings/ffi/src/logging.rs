//! Routes the SDK's `log` records to the platform (logcat on Android, os_log on Apple platforms,
//! stderr elsewhere) or, when the app gives its own logger, to that logger instead. Records of
//! the libraries underneath (sled, rustls, reqwest, mistral.rs) pass at warning level and above
//! only: at debug level an app sees the SDK's own decisions, not a database's internals.

use std::sync::{Arc, OnceLock, RwLock};

#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum LogLevel {
    Off,
    Error,
    Warn,
    Info,
    /// Adds each routing decision and refusal.
    Debug,
    Trace,
}

impl From<LogLevel> for log::LevelFilter {
    fn from(level: LogLevel) -> Self {
        match level {
            LogLevel::Off => log::LevelFilter::Off,
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
        }
    }
}

impl From<log::Level> for LogLevel {
    fn from(level: log::Level) -> Self {
        match level {
            log::Level::Error => LogLevel::Error,
            log::Level::Warn => LogLevel::Warn,
            log::Level::Info => LogLevel::Info,
            log::Level::Debug => LogLevel::Debug,
            log::Level::Trace => LogLevel::Trace,
        }
    }
}

/// The app's own logger (Timber, SLF4J, swift-log...), called from the SDK's callback thread.
#[uniffi::export(callback_interface)]
pub trait LogSink: Send + Sync {
    fn log(&self, level: LogLevel, target: String, message: String);
}

struct Bridge {
    platform: Box<dyn log::Log>,
    sink: RwLock<Option<Arc<dyn LogSink>>>,
}

impl log::Log for Bridge {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        let own = metadata.target().starts_with("hybridflow");
        metadata.level() <= log::max_level() && (own || metadata.level() <= log::Level::Warn)
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        match self.sink.read().unwrap_or_else(|p| p.into_inner()).clone() {
            Some(sink) => {
                let (level, target, message) = (record.level().into(), record.target().to_string(), record.args().to_string());
                // A panicking app logger cannot be logged to; it is ignored.
                crate::callbacks::call(move || sink.log(level, target, message), |_| {});
            }
            None => self.platform.log(record),
        }
    }

    fn flush(&self) {
        self.platform.flush();
    }
}

#[cfg(target_os = "android")]
fn platform_logger() -> Box<dyn log::Log> {
    Box::new(android_logger::AndroidLogger::new(android_logger::Config::default().with_tag("HybridFlow").with_max_level(log::LevelFilter::Trace)))
}

#[cfg(any(target_os = "ios", target_os = "macos"))]
fn platform_logger() -> Box<dyn log::Log> {
    Box::new(oslog::OsLogger::new("dev.hybridflow").level_filter(log::LevelFilter::Trace))
}

#[cfg(not(any(target_os = "android", target_os = "ios", target_os = "macos")))]
fn platform_logger() -> Box<dyn log::Log> {
    struct Stderr;
    impl log::Log for Stderr {
        fn enabled(&self, _: &log::Metadata) -> bool {
            true
        }
        fn log(&self, record: &log::Record) {
            eprintln!("[hybridflow {} {}] {}", record.level(), record.target(), record.args());
        }
        fn flush(&self) {}
    }
    Box::new(Stderr)
}

/// Sets the SDK's log level and, optionally, the app's logger, which then receives every record
/// instead of the platform's log. The bridge is installed on the first call; later calls change
/// the level and the app logger only. If the app already
/// installed another `log` logger, that one keeps receiving the records.
#[uniffi::export]
pub fn init_logging(level: LogLevel, sink: Option<Box<dyn LogSink>>) {
    static BRIDGE: OnceLock<&'static Bridge> = OnceLock::new();
    let bridge = BRIDGE.get_or_init(|| {
        let bridge: &'static Bridge = Box::leak(Box::new(Bridge { platform: platform_logger(), sink: RwLock::new(None) }));
        let _ = log::set_logger(bridge);
        bridge
    });
    *bridge.sink.write().unwrap_or_else(|p| p.into_inner()) = sink.map(Arc::from);
    log::set_max_level(level.into());
}
