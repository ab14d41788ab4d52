// swift-tools-version:5.9
// The iOS sample chat as a Swift package with an executable app target: open this folder in
// Xcode 15+, pick an iPhone simulator or device, Run. Depends on the HybridFlow package in ../../ios
// (build its XCFramework first: ios/build-xcframework.sh).
//
// On Linux (the project's Swift tests, scripts/swift-test.sh) the package is the chat's model
// layer alone (ChatModel.swift: no UIKit, Network or Security) and its tests against the real
// library and edge model; the SwiftUI app and the phone's services are Apple-only.
import PackageDescription

#if os(Linux)
let targets: [Target] = [
    .target(
        name: "HybridFlowChatModel",
        dependencies: [.product(name: "HybridFlow", package: "ios")],
        path: "HybridFlowChat",
        exclude: ["App.swift", "Views.swift", "DeviceMonitor.swift", "Keychain.swift"],
        sources: ["ChatModel.swift"]
    ),
    .testTarget(name: "ChatModelTests", dependencies: ["HybridFlowChatModel"], path: "Tests/ChatModelTests"),
]
#else
let targets: [Target] = [
    .executableTarget(
        name: "HybridFlowChat",
        dependencies: [.product(name: "HybridFlow", package: "ios")],
        path: "HybridFlowChat"
    ),
]
#endif

let package = Package(
    name: "HybridFlowChat",
    platforms: [.iOS(.v17), .macOS(.v14)],
    dependencies: [.package(path: "../../ios")],
    targets: targets
)
