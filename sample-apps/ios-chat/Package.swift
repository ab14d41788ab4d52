// swift-tools-version:5.9
// The iOS sample chat as a Swift package with an executable app target: open this folder in
// Xcode 15+, pick an iPhone simulator or device, Run. Depends on the HybridFlow package in ../../ios
// (build its XCFramework first: ios/build-xcframework.sh).
import PackageDescription

let package = Package(
    name: "HybridFlowChat",
    platforms: [.iOS(.v17)],
    dependencies: [.package(path: "../../ios")],
    targets: [
        .executableTarget(
            name: "HybridFlowChat",
            dependencies: [.product(name: "HybridFlow", package: "ios")],
            path: "HybridFlowChat"
        ),
    ]
)
