// The iOS chat's model layer on Linux, against the real library and edge model: what the app's
// screens show comes from these values. The phone's services (network, battery, Keychain) cannot
// exist here; the tests hand the model a fixed device state and an in-memory key store.
import Foundation
import HybridFlow
@testable import HybridFlowChatModel
import XCTest

@MainActor
private final class FixedDevice: DeviceStateSource {
    let state: DeviceState
    init(_ state: DeviceState) { self.state = state }
    func start(_ onChange: @escaping (DeviceState) -> Void) { onChange(state) }
}

private final class MemorySecrets: SecretStore {
    var key: String?
    func load() -> String? { key }
    func save(_ key: String) { self.key = key }
}

@MainActor
final class ChatModelTests: XCTestCase {
    private var support: URL!

    override func setUp() async throws {
        // The app keeps its model under Application Support: put the test's edge model there.
        support = FileManager.default.temporaryDirectory.appendingPathComponent("hybridflow-chat-\(UUID().uuidString)")
        let models = support.appendingPathComponent("models")
        try FileManager.default.createDirectory(at: models, withIntermediateDirectories: true)
        let edgeModel = ProcessInfo.processInfo.environment["HYBRIDFLOW_EDGE_MODEL"]!
        try FileManager.default.createSymbolicLink(atPath: models.appendingPathComponent("edge.gguf").path, withDestinationPath: edgeModel)
    }

    private func chat() -> ChatModel {
        UserDefaults.standard.removeObject(forKey: "cloudURL") // phone only
        return ChatModel(monitor: FixedDevice(DeviceState(network: .none, batteryLevel: 0.5, charging: false)), secrets: MemorySecrets(), support: support)
    }

    func testStartingOpensTheModelAndShowsTheDeviceAndBudget() async throws {
        let chat = chat()
        XCTAssertTrue(chat.hasModel)
        await chat.start()
        XCTAssertNil(chat.loading, "the model loaded")
        XCTAssertEqual(chat.device?.network, Network.none)
        XCTAssertEqual(chat.budget?.today.cloudRequests, 0)
    }

    func testAQuestionStreamsItsAnswerIntoTheTurn() async throws {
        let chat = chat()
        await chat.start()
        chat.ask("What is the capital of France?")
        await chat.running?.value
        let turn = try XCTUnwrap(chat.turns.first)
        XCTAssertNil(turn.error)
        XCTAssertEqual(turn.planning, "short query: answered without a plan")
        XCTAssertFalse(turn.answer.isEmpty, "the streamed answer is shown")
        XCTAssertEqual(turn.totals?.cloud.calls, 0, "offline: phone only")
        XCTAssertGreaterThanOrEqual(turn.totals?.edge.calls ?? 0, 1)
    }

    func testStopCancelsTheQuery() async throws {
        let chat = chat()
        await chat.start()
        chat.ask("Write a long story about dragons.")
        try await Task.sleep(nanoseconds: 1_000_000_000)
        chat.stop()
        await chat.running?.value
        let turn = try XCTUnwrap(chat.turns.first)
        XCTAssertNil(turn.totals, "the query did not run to its end")
        XCTAssertNotNil(turn.error, "the turn says it was stopped")
    }

    func testSavedSettingsReopenWithTheKeyFromTheStore() async throws {
        let secrets = MemorySecrets()
        let chat = ChatModel(monitor: FixedDevice(DeviceState(network: .wifi)), secrets: secrets, support: support)
        await chat.start()
        await chat.saveSettings(apiKey: "sk-sample")
        XCTAssertEqual(secrets.key, "sk-sample")
        XCTAssertNil(chat.loading, "reopened")
        UserDefaults.standard.removeObject(forKey: "cloudURL")
    }
}
