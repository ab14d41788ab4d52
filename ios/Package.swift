// swift-tools-version:5.9
// HybridFlow for iOS (and macOS): the Swift API over the Rust library, shipped as an XCFramework.
// Build the XCFramework first with `ios/build-xcframework.sh` (on a Mac with Xcode); see README.md.
// On Linux the same sources build against the host-built libhybridflow_ffi.so: that is how the
// project's Swift tests run (scripts/swift-test.sh).
import PackageDescription

#if os(Linux)
let ffi: Target = .systemLibrary(name: "hybridflowFFI", path: "linux")
let platformLinking: [LinkerSetting] = []
#else
// libhybridflow_ffi.a per platform, with hybridflowFFI.h and its module map.
let ffi: Target = .binaryTarget(name: "hybridflowFFI", path: "build/HybridFlowFFI.xcframework")
let platformLinking: [LinkerSetting] = [
    // mistral.rs runs the model on Metal; rustls verifies certificates with Security.
    .linkedFramework("Metal"),
    .linkedFramework("MetalPerformanceShaders"),
    .linkedFramework("Accelerate"),
    .linkedFramework("Security"),
    .linkedFramework("SystemConfiguration"),
]
#endif

let package = Package(
    name: "HybridFlow",
    platforms: [.iOS(.v15), .macOS(.v13)],
    products: [
        .library(name: "HybridFlow", targets: ["HybridFlow"]),
    ],
    targets: [
        ffi,
        // The uniffi-generated hybridflow.swift plus the async/await layer (HybridFlowClient.swift).
        .target(name: "HybridFlow", dependencies: ["hybridflowFFI"], path: "Sources/HybridFlow", linkerSettings: platformLinking),
        // Against the real library, edge model and cloud server (HYBRIDFLOW_EDGE_MODEL, HYBRIDFLOW_CLOUD_URL).
        .testTarget(name: "HybridFlowTests", dependencies: ["HybridFlow"], path: "Tests/HybridFlowTests"),
    ]
)
