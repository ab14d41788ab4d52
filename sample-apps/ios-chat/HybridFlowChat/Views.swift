// Chat (live plan with each subtask's side and reason, streamed answer, totals against the
// budget), Settings (endpoint, key in the Keychain, daily budget), Model (download with progress
// and resume, or import a file).
import HybridFlow
import SwiftUI
import UniformTypeIdentifiers

struct ChatView: View {
    @Environment(ChatModel.self) private var chat
    @State private var question = ""

    var body: some View {
        VStack(alignment: .leading) {
            if let loading = chat.loading { Text(loading).font(.caption) }
            if let d = chat.device {
                Text("\(String(describing: d.network)) · battery \(Int(d.batteryLevel * 100))%\(d.charging ? " charging" : "") · thermal \(String(describing: d.thermal))\(d.lowPowerMode ? " · low power" : "")")
                    .font(.caption2)
            }
            if let b = chat.budget {
                Text("today: \(b.today.cloudRequests) cloud calls, cost \(b.today.cost, format: .number.precision(.fractionLength(4)))\(b.budgets.perDay.money.map { " of \($0)" } ?? "")")
                    .font(.caption2)
            }
            List(chat.turns) { turn in TurnView(turn: turn) }
            HStack {
                TextField("Ask", text: $question).textFieldStyle(.roundedBorder)
                Button("Send") { chat.ask(question); question = "" }.disabled(question.isEmpty)
                Button("Stop") { chat.stop() }
            }
        }
        .padding()
    }
}

struct TurnView: View {
    let turn: Turn

    var body: some View {
        VStack(alignment: .leading, spacing: 4) {
            Text(turn.question).font(.headline)
            if let planning = turn.planning { Text(planning).font(.caption) }
            ForEach(turn.steps) { step in
                HStack(alignment: .top) {
                    Text(step.side == .cloud ? "cloud" : step.side == .edge ? "phone" : "waiting")
                        .font(.caption.bold()).padding(4).background(.thinMaterial, in: Capsule())
                    VStack(alignment: .leading) {
                        Text("\(step.id): \(step.subtask.task)")
                        Text("\(step.reason) \(stateText(step))").font(.caption2)
                    }
                }
            }
            Text(turn.answer)
            if let error = turn.error { Text(error).foregroundStyle(.red) }
            if let t = turn.totals {
                Text("phone \(t.edge.completionTokens) tokens · cloud \(t.cloud.promptTokens)+\(t.cloud.completionTokens) tokens · cost \(t.cloudCost, format: .number.precision(.fractionLength(5))) · \(Double(t.wallTimeMs) / 1000, format: .number.precision(.fractionLength(1))) s")
                    .font(.caption2)
            }
        }
    }

    private func stateText(_ step: StepView) -> String {
        switch step.outcome {
        case .done: return "done"
        case .failed: return "failed"
        case .skipped: return "skipped"
        case nil: return step.side == nil ? "" : "running (\(step.tokens) tokens)"
        }
    }
}

struct SettingsView: View {
    @Environment(ChatModel.self) private var chat
    @State private var apiKey = ""
    @State private var budget = ""

    var body: some View {
        @Bindable var chat = chat
        Form {
            TextField("Cloud endpoint (https://…/v1), empty for phone only", text: $chat.cloudURL)
            TextField("Cloud model", text: $chat.cloudModel)
            SecureField("API key (Keychain; empty keeps the saved one)", text: $apiKey)
            TextField("Daily budget (money), empty for none", text: $budget).keyboardType(.decimalPad)
            Button("Save") {
                chat.dailyBudget = Double(budget)
                Task { await chat.saveSettings(apiKey: apiKey); apiKey = "" }
            }
            Button("Reset budgets") { Task { await chat.resetBudgets() } }
        }
        .onAppear { budget = chat.dailyBudget.map { String($0) } ?? "" }
    }
}

struct ModelView: View {
    @Environment(ChatModel.self) private var chat
    @State private var url = ""
    @State private var importing = false
    @State private var downloader = ModelDownloader()

    var body: some View {
        Form {
            Text(chat.hasModel ? "A model is on the phone" : "No model yet")
            TextField("GGUF download URL", text: $url)
            Button("Download (resumes)") {
                Task {
                    do {
                        try await downloader.download(from: URL(string: url)!, to: chat.modelURL) { chat.downloadProgress = $0 }
                        chat.downloadProgress = nil
                        await chat.open()
                    } catch {
                        chat.loading = "download interrupted (\(error.localizedDescription)); start it again to resume"
                    }
                }
            }
            .disabled(URL(string: url) == nil)
            if let progress = chat.downloadProgress { ProgressView(value: progress) }
            Button("Import a GGUF file") { importing = true }
        }
        .fileImporter(isPresented: $importing, allowedContentTypes: [.data]) { result in
            guard case .success(let picked) = result, picked.startAccessingSecurityScopedResource() else { return }
            defer { picked.stopAccessingSecurityScopedResource() }
            try? FileManager.default.createDirectory(at: chat.modelURL.deletingLastPathComponent(), withIntermediateDirectories: true)
            try? FileManager.default.removeItem(at: chat.modelURL)
            try? FileManager.default.copyItem(at: picked, to: chat.modelURL)
            Task { await chat.open() }
        }
    }
}

/// Downloads with URLSession, keeping resume data when interrupted so the next try continues.
@MainActor
final class ModelDownloader {
    private var resumeData: Data?

    func download(from url: URL, to destination: URL, progress: @escaping (Double) -> Void) async throws {
        let delegate = ProgressDelegate(progress)
        let session = URLSession(configuration: .default, delegate: delegate, delegateQueue: .main)
        do {
            let (file, _) = try await (resumeData.map { try await session.download(resumeFrom: $0) } ?? session.download(from: url))
            resumeData = nil
            try FileManager.default.createDirectory(at: destination.deletingLastPathComponent(), withIntermediateDirectories: true)
            try? FileManager.default.removeItem(at: destination)
            try FileManager.default.moveItem(at: file, to: destination)
        } catch let error as URLError {
            resumeData = error.downloadTaskResumeData
            throw error
        }
    }
}

private final class ProgressDelegate: NSObject, URLSessionDownloadDelegate {
    let report: (Double) -> Void
    init(_ report: @escaping (Double) -> Void) { self.report = report }

    func urlSession(_ session: URLSession, downloadTask: URLSessionDownloadTask, didWriteData _: Int64,
                    totalBytesWritten: Int64, totalBytesExpectedToWrite: Int64) {
        if totalBytesExpectedToWrite > 0 { report(Double(totalBytesWritten) / Double(totalBytesExpectedToWrite)) }
    }

    func urlSession(_ session: URLSession, downloadTask: URLSessionDownloadTask, didFinishDownloadingTo location: URL) {}
}
