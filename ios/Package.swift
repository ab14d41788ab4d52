// swift-tools-version:5.9
// HybridFlow for iOS (and macOS): the Swift API over the Rust library, shipped as an XCFramework.
// Build the XCFramework first with `ios/build-xcframework.sh` (on a Mac with Xcode); see README.md.
import PackageDescription

let package = Package(
    name: "HybridFlow",
    platforms: [.iOS(.v15), .macOS(.v13)],
    products: [
        .library(name: "HybridFlow", targets: ["HybridFlow"]),
    ],
    targets: [
        // libhybridflow_ffi.a per platform, with hybridflowFFI.h and its module map.
        .binaryTarget(name: "hybridflowFFI", path: "build/HybridFlowFFI.xcframework"),
        // The uniffi-generated hybridflow.swift plus the async/await layer (HybridFlowClient.swift).
        .target(
            name: "HybridFlow",
            dependencies: ["hybridflowFFI"],
            path: "Sources/HybridFlow",
            linkerSettings: [
                // mistral.rs runs the model on Metal; rustls verifies certificates with Security.
                .linkedFramework("Metal"),
                .linkedFramework("MetalPerformanceShaders"),
                .linkedFramework("Accelerate"),
                .linkedFramework("Security"),
                .linkedFramework("SystemConfiguration"),
            ]
        ),
    ]
)
