import SwiftUI

@main
struct HybridFlowChatApp: App {
    @State private var chat = ChatModel(monitor: DeviceMonitor(), secrets: Keychain())

    var body: some Scene {
        WindowGroup {
            TabView {
                ChatView().tabItem { Label("Chat", systemImage: "bubble.left.and.bubble.right") }
                SettingsView().tabItem { Label("Settings", systemImage: "gear") }
                ModelView().tabItem { Label("Model", systemImage: "cpu") }
            }
            .environment(chat)
            .task { await chat.start() }
        }
    }
}
