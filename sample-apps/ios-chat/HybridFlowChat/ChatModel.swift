// The chat's state: the client (opened once a model is on the phone), the turns with their live
// plans, routes and streamed answers, the device state and the budget. Free of UIKit, Network and
// Security (the phone's services come in through the two protocols below), so it also builds and
// is tested on Linux (Tests/ChatModelTests).
import Foundation
import HybridFlow
import Observation

/// What the phone reports (DeviceMonitor: NWPathMonitor, UIDevice, ProcessInfo).
@MainActor
protocol DeviceStateSource {
    func start(_ onChange: @escaping (DeviceState) -> Void)
}

/// Where the cloud API key is kept (Keychain).
protocol SecretStore {
    func load() -> String?
    func save(_ key: String)
}

struct StepView: Identifiable {
    let subtask: PlannedSubtask
    var side: Side?
    var reason = ""
    var outcome: SubtaskOutcome?
    var tokens = 0
    var id: String { subtask.id }
}

@Observable
final class Turn: Identifiable {
    let id = UUID()
    let question: String
    var planning: String?
    var steps: [StepView] = []
    var answer = ""
    var totals: Totals?
    var error: String?
    init(question: String) { self.question = question }
}

@MainActor
@Observable
final class ChatModel {
    var turns: [Turn] = []
    var loading: String?
    var downloadProgress: Double?
    var device: DeviceState?
    var budget: BudgetStatus?
    var cloudURL = UserDefaults.standard.string(forKey: "cloudURL") ?? ""
    var cloudModel = UserDefaults.standard.string(forKey: "cloudModel") ?? ""
    var dailyBudget = UserDefaults.standard.object(forKey: "dailyBudget") as? Double

    private var client: HybridFlowClient?
    /// The question being answered (awaited by the tests).
    private(set) var running: Task<Void, Never>?
    private let monitor: DeviceStateSource
    private let secrets: SecretStore
    private let support: URL

    init(monitor: DeviceStateSource, secrets: SecretStore,
         support: URL = FileManager.default.urls(for: .applicationSupportDirectory, in: .userDomainMask)[0]) {
        self.monitor = monitor
        self.secrets = secrets
        self.support = support
    }
    var modelURL: URL { support.appendingPathComponent("models/edge.gguf") }
    var hasModel: Bool { FileManager.default.fileExists(atPath: modelURL.path) }

    func start() async {
        monitor.start { [weak self] state in
            self?.device = state
            try? self?.client?.setDeviceState(state)
        }
        if hasModel { await open() }
    }

    func open() async {
        // Closing waits until the old client released the state directory the new one opens.
        await client?.close()
        client = nil
        let cloud = cloudURL.isEmpty ? nil : CloudEndpoint(baseUrl: cloudURL, model: cloudModel, apiKey: secrets.load().map { ApiKey(key: $0) })
        let config = HybridFlowConfig(
            edgeModelPath: modelURL.path,
            cloud: cloud,
            stateDir: support.appendingPathComponent("hybridflow").path,
            budgets: Budgets(perDay: Limits(money: dailyBudget))
        )
        do {
            let opened = try await HybridFlowClient.open(config) { progress in
                Task { @MainActor [weak self] in
                    switch progress {
                    case .checking: self?.loading = "checking the model…"
                    case .loading(let architecture, let bytes): self?.loading = "loading \(architecture) (\(bytes / 1_000_000) MB)…"
                    case .ready: self?.loading = nil
                    }
                }
            }
            if let device { try opened.setDeviceState(device) }
            client = opened
            budget = try await opened.budgetStatus()
        } catch {
            loading = error.localizedDescription
        }
    }

    func saveSettings(apiKey: String) async {
        UserDefaults.standard.set(cloudURL, forKey: "cloudURL")
        UserDefaults.standard.set(cloudModel, forKey: "cloudModel")
        UserDefaults.standard.set(dailyBudget, forKey: "dailyBudget")
        if !apiKey.isEmpty { secrets.save(apiKey) }
        await open()
    }

    func resetBudgets() async {
        guard let client else { return }
        try? await client.resetBudgets()
        budget = try? await client.budgetStatus()
    }

    func ask(_ question: String) {
        guard let client else { return }
        let turn = Turn(question: question)
        turns.append(turn)
        running = Task {
            do {
                for try await event in client.askStreaming(question) { apply(event, to: turn) }
                if Task.isCancelled { turn.error = "stopped" }
            } catch {
                turn.error = error.localizedDescription
            }
            budget = try? await client.budgetStatus()
        }
    }

    /// Cancelling the task ends the stream, which cancels the query in the SDK.
    func stop() { running?.cancel() }

    private func apply(_ event: Event, to turn: Turn) {
        func update(_ id: String, _ change: (inout StepView) -> Void) {
            if let index = turn.steps.firstIndex(where: { $0.id == id }) { change(&turn.steps[index]) }
        }
        switch event {
        case .planningStarted(let side, _, _): turn.planning = "planning on the \(side == .edge ? "phone" : "cloud")…"
        case .planReady(let subtasks, let direct):
            turn.planning = direct?.description
            for s in subtasks where !turn.steps.contains(where: { $0.id == s.id }) { turn.steps.append(StepView(subtask: s)) }
        case .subtaskStarted(let id, let side, let reason, _, _, _): update(id) { $0.side = side; $0.reason = reason }
        case .token(let id, let text):
            if let id { update(id) { $0.tokens += 1 } } else { turn.answer += text }
        case .subtaskFinished(let id, _, let outcome, _, _, _, _): update(id) { $0.outcome = outcome }
        case .answerStarted, .answerReset: turn.answer = ""
        case .answerChecked(_, let escalated, _, _):
            if escalated { turn.planning = "the phone was unsure: asking the cloud…" }
        case .cloudRefused(let step, let gate):
            if case .subtask(let id) = step { update(id) { $0.reason = "kept on the phone: \(gate)" } } else { turn.planning = "kept on the phone: \(gate)" }
        case .answer(let text, _, let totals):
            turn.answer = text
            turn.totals = totals
        }
    }
}
