// The idiomatic Swift face of HybridFlow, beside the uniffi-generated HybridFlow.swift of the
// same module (records, enums, `HybridFlow`, `HybridFlowError`).
//
// Why queries go through the streaming handle even for `ask`: uniffi's Swift futures do not
// observe task cancellation, while `QueryHandle.cancel()` does stop the query; so a cancelled
// `Task` here always cancels its model calls.

import Foundation

/// A HybridFlow engine: an on-device model, a cloud endpoint when it pays off, budgets that
/// persist. Open one per app; queries run concurrently on it. `close()` ends it and waits until
/// the state directory is free for a new client; releasing it without `close()` cancels its
/// queries. Calls that touch the disk are `async`; listeners and the log callback are called from
/// the SDK's one callback thread.
public final class HybridFlowClient: Sendable {
    private let engine: HybridFlow

    private init(engine: HybridFlow) {
        self.engine = engine
    }

    /// Checks `config`, loads the edge model and opens the budget store.
    /// Throws `HybridFlowError.InvalidConfig` or `.ModelLoad`.
    public static func open(
        _ config: HybridFlowConfig,
        onProgress: (@Sendable (LoadProgress) -> Void)? = nil
    ) async throws -> HybridFlowClient {
        let relay = onProgress.map(ProgressRelay.init)
        return HybridFlowClient(engine: try await HybridFlow.open(config: config, progress: relay))
    }

    /// The SDK's log level (os_log) and optionally the app's own logger.
    public static func setLogging(_ level: LogLevel, logger: (@Sendable (LogLevel, String, String) -> Void)? = nil) {
        initLogging(level: level, sink: logger.map(LogRelay.init))
    }

    /// Answers `query`. Cancelling the calling task cancels every model call of the query.
    public func ask(_ query: String) async throws -> Answer {
        let handle = try engine.askStreaming(query: query, listener: DiscardEvents())
        return try await withTaskCancellationHandler {
            try await handle.answer()
        } onCancel: {
            handle.cancel()
        }
    }

    /// Answers `query` as a stream of events: the plan, each subtask's route and reason, tokens,
    /// results, and last `.answer`. Ending the iteration (or cancelling its task) cancels the
    /// query; failures end the stream with a `HybridFlowError`.
    public func askStreaming(_ query: String) -> AsyncThrowingStream<Event, Error> {
        AsyncThrowingStream(bufferingPolicy: .unbounded) { continuation in
            let handle: QueryHandle
            do {
                handle = try engine.askStreaming(query: query, listener: EventRelay(continuation))
            } catch {
                continuation.finish(throwing: error)
                return
            }
            let completion = Task {
                do {
                    _ = try await handle.answer()
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in
                handle.cancel()
                completion.cancel()
            }
        }
    }

    /// What the phone reports (NWPathMonitor, UIDevice battery, ProcessInfo thermal state and
    /// low-power mode); every cloud request is checked against it from now on.
    public func setDeviceState(_ state: DeviceState) throws {
        try engine.setDeviceState(state: state)
    }

    public func setPolicy(_ policy: AppPolicy) throws {
        try engine.setPolicy(policy: policy)
    }

    /// Today's and this month's cloud spending against the limits.
    public func budgetStatus() async throws -> BudgetStatus {
        try await engine.budgetStatus()
    }

    /// Forgets the day's and month's spending (and a "spending unknown" mark after a damaged store).
    public func resetBudgets() async throws {
        try await engine.resetBudgets()
    }

    /// What the learned router measured on this device; nil for the fixed routings.
    public func routerStatistics() async throws -> RouterStatistics? {
        try await engine.routerStatistics()
    }

    /// Cancels running queries, waits until they stopped, and releases the model and the state
    /// directory. Later calls throw `HybridFlowError.Closed`.
    public func close() async {
        await engine.shutdown()
    }
}

extension HybridFlowError: LocalizedError {
    /// The SDK's sentence for the error (`localizedDescription` reads it).
    public var errorDescription: String? {
        switch self {
        case .InvalidConfig(let message), .InvalidQuery(let message), .ModelLoad(let message),
             .CloudUnavailable(let message), .CloudAuthentication(let message), .Network(let message),
             .BudgetExhausted(let message), .CloudNotAllowed(let message), .AnswerFailed(let message),
             .Busy(let message), .Cancelled(let message), .Closed(let message), .Internal(let message):
            return message
        }
    }
}

private final class EventRelay: EventListener {
    let continuation: AsyncThrowingStream<Event, Error>.Continuation

    init(_ continuation: AsyncThrowingStream<Event, Error>.Continuation) {
        self.continuation = continuation
    }

    func onEvent(event: Event) {
        continuation.yield(event)
    }
}

private final class DiscardEvents: EventListener {
    func onEvent(event: Event) {}
}

private final class ProgressRelay: LoadListener {
    let report: @Sendable (LoadProgress) -> Void

    init(_ report: @escaping @Sendable (LoadProgress) -> Void) {
        self.report = report
    }

    func onProgress(progress: LoadProgress) {
        report(progress)
    }
}

private final class LogRelay: LogSink {
    let write: @Sendable (LogLevel, String, String) -> Void

    init(_ write: @escaping @Sendable (LogLevel, String, String) -> Void) {
        self.write = write
    }

    func log(level: LogLevel, target: String, message: String) {
        write(level, target, message)
    }
}
