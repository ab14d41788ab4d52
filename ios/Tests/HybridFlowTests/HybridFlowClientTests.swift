// The Swift API against the real library: the real edge model (mistral.rs) and the real test cloud
// (llama-server). Run on Linux by scripts/swift-test.sh, itself run by scripts/test.sh; mirrors the
// Kotlin suite (bindings/kotlin/test).
import Foundation
import XCTest

@testable import HybridFlow

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

final class HybridFlowClientTests: XCTestCase {
    private let environment = ProcessInfo.processInfo.environment
    private let multiStep = "Tom has 3 boxes with 4 apples each. He gives away 5 apples. How many apples does he have left?"
    private let secret = "sk-swift-test-secret"

    private var edgeModel: String { environment["HYBRIDFLOW_EDGE_MODEL"]! }
    private var cloudURL: String { environment["HYBRIDFLOW_CLOUD_URL"]! }
    private var cloudModel: String { environment["HYBRIDFLOW_CLOUD_MODEL"] ?? "qwen2.5-coder-0.5b-instruct" }

    private func stateDir() -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hybridflow-swift-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.path
    }

    private func config(_ routing: Routing, withCloud: Bool = true, stateDir: String? = nil, decomposition: Decomposition? = nil) -> HybridFlowConfig {
        HybridFlowConfig(
            edgeModelPath: edgeModel,
            cloud: withCloud ? CloudEndpoint(baseUrl: cloudURL, model: cloudModel, apiKey: ApiKey(key: secret)) : nil,
            stateDir: stateDir ?? self.stateDir(),
            routing: routing,
            decomposition: decomposition
        )
    }

    private func collect(_ stream: AsyncThrowingStream<Event, Error>) async throws -> [Event] {
        var events: [Event] = []
        for try await event in stream { events.append(event) }
        return events
    }

    /// CPU time of this process (all its threads), in seconds.
    private func cpuSeconds() -> Double {
        Double(clock()) / Double(CLOCKS_PER_SEC)
    }

    func testAsksWithTheRealEdgeModel() async throws {
        let client = try await HybridFlowClient.open(config(.edgeOnly, withCloud: false))
        let answer = try await client.ask("What is the capital of France?")
        XCTAssertFalse(answer.text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)
        XCTAssertGreaterThanOrEqual(answer.totals.edge.calls, 1)
        XCTAssertEqual(answer.totals.cloud.calls, 0)
        await client.close()
    }

    func testTheGgmlEngineIsChosenInTheConfigurationAndReportsWhereItRuns() async throws {
        let readies = ReadyLog()
        let ggml = HybridFlowConfig(edgeModelPath: edgeModel, edgeEngine: .ggml, stateDir: stateDir(), routing: .edgeOnly)
        let client = try await HybridFlowClient.open(ggml) { progress in
            if case let .ready(_, engine, device, gpuUnavailable) = progress { readies.add(engine, device, gpuUnavailable) }
        }
        // The edge engine tests' question, which the 135M model answers on both engines.
        let events = try await collect(client.askStreaming("What is the capital of France? Answer in one sentence."))
        // The one step of a direct answer, and what served it.
        let servedBy = events.compactMap { event -> String? in if case .subtaskStarted(_, _, _, _, _, let by) = event { return by } else { return nil } }
        XCTAssertEqual(servedBy, ["ggml on CPU"])
        guard case .answer(let text, _, let totals)? = events.last else { return XCTFail("no answer: \(events)") }
        XCTAssertTrue(text.contains("Paris"), text)
        XCTAssertEqual(totals.edge.calls, 1)
        await client.close()
        XCTAssertEqual(readies.entries.count, 1)
        XCTAssertEqual(readies.entries.first?.engine, .ggml)
        XCTAssertEqual(readies.entries.first?.device, "CPU")
        XCTAssertNil(readies.entries.first?.gpuUnavailable ?? nil)
    }

    func testAsksWithTheRealCloudServerAndRecordsTheSpending() async throws {
        let client = try await HybridFlowClient.open(config(.cloudOnly))
        let answer = try await client.ask(multiStep)
        XCTAssertFalse(answer.text.isEmpty)
        XCTAssertGreaterThanOrEqual(answer.totals.cloud.calls, 1)
        let spent = try await client.budgetStatus()
        XCTAssertEqual(spent.today.cloudRequests, Int64(answer.totals.cloud.calls), "spending recorded in the store")
        await client.close()
    }

    func testByDefaultAQueryIsAnsweredInOneStepOnTheSideTheRouterPicks() async throws {
        let client = try await HybridFlowClient.open(config(.learned))
        let events = try await collect(client.askStreaming(multiStep))
        XCTAssertFalse(events.contains { if case .planningStarted = $0 { return true } else { return false } }, "no planning call")
        let reasons = events.compactMap { event -> DirectReason?? in if case .planReady(_, let reason) = event { return reason } else { return nil } }
        // The query-level decision weighed a plan and declined it, with its measured numbers.
        XCTAssertEqual(reasons.count, 1)
        guard case .notWorthDecomposing(let why)? = reasons.first ?? nil else { return XCTFail("\(reasons)") }
        XCTAssertTrue(why.hasPrefix("a plan gains"), why)
        let routes = events.compactMap { event -> (Side, RouteExplanation?)? in
            if case .subtaskStarted(_, let side, _, _, let explanation, _) = event { return (side, explanation) } else { return nil }
        }
        XCTAssertEqual(routes.count, 1)
        XCTAssertEqual(routes.first?.0, .cloud, "the measured gain clears the threshold")
        let explanation = try XCTUnwrap(routes.first?.1)
        XCTAssertGreaterThan(explanation.predictedGain, explanation.threshold)
        guard case .answer(_, _, let totals) = events.last else { return XCTFail("the last event is the answer") }
        XCTAssertEqual(totals.cloud.calls, 1)
        await client.close()
    }

    func testEventsArriveInOrderAndEndWithTheAnswer() async throws {
        let client = try await HybridFlowClient.open(config(.byDifficulty, decomposition: .longQueries))
        let events = try await collect(client.askStreaming(multiStep))
        guard case .answer(let text, _, _) = events.last else { return XCTFail("the last event is the answer: \(String(describing: events.last))") }
        XCTAssertEqual(events.filter { if case .answer = $0 { return true } else { return false } }.count, 1)
        guard let plan = events.compactMap({ event -> [PlannedSubtask]? in if case .planReady(let subtasks, _) = event { return subtasks } else { return nil } }).last else {
            return XCTFail("no plan")
        }
        var started = Set<String>(), finished = Set<String>()
        for event in events {
            switch event {
            case .subtaskStarted(let id, _, let reason, _, _, _):
                guard let subtask = plan.first(where: { $0.id == id }) else {
                    XCTFail("\(id) started but is not in the final plan (did the planner fail? \(events))")
                    break
                }
                XCTAssertTrue(subtask.dependsOn.allSatisfy(finished.contains), "\(id) started after its dependencies finished")
                XCTAssertFalse(reason.isEmpty)
                started.insert(id)
            case .subtaskFinished(let id, _, let outcome, _, _, _, _):
                var skipped = false
                if case .skipped = outcome { skipped = true }
                XCTAssertTrue(started.contains(id) || skipped, "\(id) finished after it started")
                finished.insert(id)
            case .token(let id?, _):
                XCTAssertTrue(started.contains(id), "tokens of a started subtask")
            default:
                break
            }
        }
        XCTAssertEqual(Set(plan.map(\.id)), finished, "every planned subtask finished")
        // An attempt that fails after streaming part of the answer is followed by answerReset.
        let reset = events.lastIndex { if case .answerReset = $0 { return true } else { return false } }
        let sinceReset = reset.map { events[($0 + 1)...] } ?? events[...]
        let streamed = sinceReset.compactMap { event -> String? in if case .token(nil, let text) = event { return text } else { return nil } }.joined()
        XCTAssertEqual(streamed.trimmingCharacters(in: .whitespacesAndNewlines), text.trimmingCharacters(in: .whitespacesAndNewlines), "the answer is what was streamed")
        await client.close()
    }

    func testCancellingTheTaskStopsTheRustWork() async throws {
        let client = try await HybridFlowClient.open(config(.edgeOnly, withCloud: false))
        let firstToken = expectation(description: "a first token")
        let task = Task {
            var fulfilled = false
            for try await event in client.askStreaming("Write a long story about a dragon who learns to cook.") {
                if case .token = event, !fulfilled {
                    fulfilled = true
                    firstToken.fulfill()
                }
                if case .answer = event { XCTFail("the query ran to its end") }
            }
        }
        await fulfillment(of: [firstToken], timeout: 120)
        task.cancel()
        _ = await task.result
        try await Task.sleep(nanoseconds: 500_000_000)
        let before = cpuSeconds()
        try await Task.sleep(nanoseconds: 2_000_000_000)
        let burnt = cpuSeconds() - before
        XCTAssertLessThan(burnt, 1.0, "the engine still decodes after the task was cancelled: \(burnt) s of CPU in 2 s")
        // The engine is free again: the next query runs to its end.
        let answer = try await client.ask("Say hello.")
        XCTAssertFalse(answer.text.isEmpty)
        await client.close()
    }

    func testCancellingAskThrowsAndStopsTheRustWork() async throws {
        let client = try await HybridFlowClient.open(config(.edgeOnly, withCloud: false))
        // Short enough to be answered without planning, so the engine decodes at once.
        let task = Task { try await client.ask("Write a long story about dragons.") }
        try await Task.sleep(nanoseconds: 1_500_000_000)
        var before = cpuSeconds()
        try await Task.sleep(nanoseconds: 1_000_000_000)
        let busy = cpuSeconds() - before
        task.cancel()
        do {
            _ = try await task.value
            XCTFail("the query was not cancelled")
        } catch HybridFlowError.Cancelled {
        } catch is CancellationError {
        }
        try await Task.sleep(nanoseconds: 300_000_000)
        before = cpuSeconds()
        try await Task.sleep(nanoseconds: 1_000_000_000)
        let idle = cpuSeconds() - before
        XCTAssertGreaterThan(busy, 0.5, "decoding should keep a core busy: \(busy) s of CPU in 1 s")
        XCTAssertLessThan(idle * 4, busy, "the engine went on after the task was cancelled: \(idle) s vs \(busy) s")
        await client.close()
    }

    func testInvalidConfigurationAndMissingModelThrowTypedErrors() async throws {
        let cases: [(HybridFlowConfig, String)] = [
            (HybridFlowConfig(cloud: CloudEndpoint(baseUrl: "http://example.com/v1", model: "m")), "https"),
            (HybridFlowConfig(), "neither"),
            (HybridFlowConfig(edgeModelPath: edgeModel, budgets: Budgets(perDay: Limits(money: 1.0))), "state_dir"),
            (HybridFlowConfig(edgeModelPath: edgeModel, policy: AppPolicy(offload: .allowed, minBatteryForCloud: 2.0)), "min_battery"),
            (HybridFlowConfig(edgeModelPath: edgeModel, cloud: CloudEndpoint(baseUrl: cloudURL, model: "m"), policy: AppPolicy(offload: .never), routing: .cloudOnly), "contradicts"),
            (HybridFlowConfig(edgeModelPath: edgeModel, edgeEngine: .mistralRs, gpu: .vulkan, stateDir: stateDir()), "ggml engine"),
            (HybridFlowConfig(edgeModelPath: edgeModel, gpu: .vulkan), "state directory"),
        ]
        for (config, mentions) in cases {
            do {
                let client = try await HybridFlowClient.open(config)
                await client.close()
                XCTFail("accepted: \(config)")
            } catch HybridFlowError.InvalidConfig(let reason) {
                XCTAssertTrue(reason.contains(mentions), "'\(reason)' mentions \(mentions)")
            }
        }
        do {
            _ = try await HybridFlowClient.open(HybridFlowConfig(edgeModelPath: "/nonexistent/model.gguf"))
            XCTFail("a missing model loaded")
        } catch HybridFlowError.ModelLoad(let reason) {
            XCTAssertTrue(reason.contains("not found"), reason)
        }
    }

    func testTwoClientsAnswerAtOnce() async throws {
        let first = try await HybridFlowClient.open(config(.edgeOnly, withCloud: false))
        let second = try await HybridFlowClient.open(config(.cloudOnly))
        async let a = first.ask("What is 2 + 2?")
        async let b = second.ask("What is 3 + 3?")
        let (onEdge, onCloud) = try await (a, b)
        XCTAssertFalse(onEdge.text.isEmpty)
        XCTAssertFalse(onCloud.text.isEmpty)
        XCTAssertEqual(onEdge.totals.cloud.calls, 0)
        XCTAssertGreaterThanOrEqual(onCloud.totals.cloud.calls, 1)
        await first.close()
        await second.close()
    }

    func testOfflineKeepsEveryStepOnTheEdge() async throws {
        let client = try await HybridFlowClient.open(config(.learned))
        try client.setDeviceState(DeviceState(network: .none))
        let events = try await collect(client.askStreaming(multiStep))
        let routes = events.compactMap { event -> (Side, Gate?)? in
            if case .subtaskStarted(_, let side, _, _, let explanation, _) = event { return (side, explanation?.gate) } else { return nil }
        }
        XCTAssertFalse(routes.isEmpty)
        for (side, gate) in routes {
            XCTAssertEqual(side, .edge)
            XCTAssertEqual(gate, .offline)
        }
        // The edge's one-step answer is checked by its real confidence; the gate keeps it.
        let checks = events.compactMap { event -> (Double, Bool, Gate?)? in
            if case .answerChecked(let confidence, let escalated, _, let explanation) = event { return (confidence, escalated, explanation?.gate) } else { return nil }
        }
        XCTAssertEqual(checks.count, 1)
        if let (confidence, escalated, gate) = checks.first {
            XCTAssertTrue(confidence < 0 && confidence.isFinite, "a mean log-probability: \(confidence)")
            XCTAssertFalse(escalated)
            XCTAssertEqual(gate, .offline)
        }
        guard case .answer(_, _, let totals) = events.last else { return XCTFail("no answer") }
        XCTAssertEqual(totals.cloud.calls, 0)
        let statistics = try await client.routerStatistics()
        XCTAssertNotNil(statistics)
        await client.close()
    }

    func testTheKeyIsAbsentFromEveryDescription() {
        let key = ApiKey(key: secret)
        let endpoint = CloudEndpoint(baseUrl: cloudURL, model: cloudModel, apiKey: key)
        let config = HybridFlowConfig(edgeModelPath: edgeModel, cloud: endpoint)
        var dumped = ""
        dump(config, to: &dumped)
        for printed in [String(describing: key), "\(key)", String(reflecting: key), String(describing: endpoint), String(describing: config), dumped] {
            XCTAssertFalse(printed.contains(secret), printed)
        }
        XCTAssertTrue(String(describing: key).contains("redacted"))
    }

    func testAClientClosedAndReopenedAtOnceOnTheSameStateDirectoryWorks() async throws {
        let shared = stateDir()
        for _ in 0..<3 {
            let client = try await HybridFlowClient.open(config(.edgeOnly, withCloud: false, stateDir: shared))
            // A query still running when close is called: close cancels it and waits for it.
            let running = Task { try? await client.ask(multiStep) }
            try await Task.sleep(nanoseconds: 200_000_000)
            await client.close()
            _ = await running.value
        }
        let reopened = try await HybridFlowClient.open(config(.edgeOnly, withCloud: false, stateDir: shared))
        let status = try await reopened.budgetStatus()
        XCTAssertEqual(status.today.cloudRequests, 0)
        await reopened.close()
        do {
            _ = try await reopened.budgetStatus()
            XCTFail("a closed client answered")
        } catch HybridFlowError.Closed {
        }
    }

    func testAnUnreachableCloudThrowsNetworkWithAReadableCause() async throws {
        // A port nothing listens on; cloud-only, so there is no edge to fall back on.
        let client = try await HybridFlowClient.open(HybridFlowConfig(
            cloud: CloudEndpoint(baseUrl: "http://127.0.0.1:9/v1", model: "m"),
            stateDir: stateDir(),
            routing: .cloudOnly
        ))
        do {
            _ = try await client.ask("What is 2 + 2?")
            XCTFail("answered without a cloud")
        } catch let error as HybridFlowError {
            guard case .Network = error else { return XCTFail("expected Network, got \(error)") }
            let description = error.localizedDescription
            XCTAssertTrue(description.hasPrefix("the cloud could not be reached"), description)
            XCTAssertTrue(description.contains("refused"), description)
        }
        await client.close()
        await client.close() // idempotent
    }
}

/// `LoadProgress.ready` reports, collected from the SDK's callback thread.
private final class ReadyLog: @unchecked Sendable {
    private let lock = NSLock()
    private var log: [(engine: EdgeEngine, device: String, gpuUnavailable: String?)] = []

    func add(_ engine: EdgeEngine, _ device: String, _ gpuUnavailable: String?) {
        lock.lock(); defer { lock.unlock() }
        log.append((engine, device, gpuUnavailable))
    }

    var entries: [(engine: EdgeEngine, device: String, gpuUnavailable: String?)] {
        lock.lock(); defer { lock.unlock() }
        return log
    }
}
