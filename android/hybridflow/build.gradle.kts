// The AAR: the Kotlin API (generated bindings + the idiomatic layer shared with the JVM build)
// and, for each ABI, libhybridflow_ffi.so built by cargo-ndk from the Rust workspace, on the 64-bit
// ABIs with the ggml engine's shared libraries beside it (llama, ggml, its CPU variants and Vulkan
// backend, which the engine loads from the directory it runs from).
plugins {
    id("com.android.library")
    id("org.jetbrains.kotlin.android")
}

val repositoryRoot = rootDir.parentFile
val rustJniLibs = layout.buildDirectory.dir("rustJniLibs")

// `-Phybridflow.lean=true`: the lean library, the ggml engine alone on the CPU (no mistral.rs, no
// Vulkan backend); about a quarter of the native code per ABI (android/README.md, "Size").
val lean = providers.gradleProperty("hybridflow.lean").map { it.toBoolean() }.getOrElse(false)
// ggml's CPU backend is built as ARMv8/ARMv9 variants (SVE, SME), which 32-bit ARM cannot
// compile: armeabi-v7a gets mistral.rs alone, and the lean library (ggml alone) has no armeabi-v7a.
val ggmlAbis = listOf("arm64-v8a", "x86_64")
val abis = if (lean) ggmlAbis else ggmlAbis + "armeabi-v7a"

android {
    namespace = "dev.hybridflow"
    compileSdk = 35
    ndkVersion = "27.2.12479018"

    defaultConfig {
        minSdk = 26
        consumerProguardFiles("consumer-rules.pro")
        ndk { abiFilters += abis }
    }

    sourceSets["main"].apply {
        kotlin.srcDirs("src/main/kotlin", "$repositoryRoot/bindings/kotlin/src")
        jniLibs.srcDir(rustJniLibs)
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
}

kotlin {
    jvmToolchain(17)
}

dependencies {
    // JNA's AAR carries libjnidispatch.so for every ABI; the bindings load the Rust library through it.
    implementation("net.java.dev.jna:jna:5.14.0@aar")
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.9.0")
}

// cargo-ndk builds the desktop build's crate and feature set (or the lean one's) for the 64-bit
// ABIs, and mistral.rs alone for armeabi-v7a.
fun cargoNdk(name: String, targets: List<String>, features: List<String>) = tasks.register<Exec>(name) {
    group = "build"
    description = "Builds libhybridflow_ffi.so for ${targets.joinToString()} with cargo-ndk"
    workingDir = repositoryRoot
    val args = mutableListOf("cargo", "ndk", "--platform", "26", "-o", rustJniLibs.get().asFile.path)
    targets.forEach { args += listOf("-t", it) }
    // The `mobile` profile (Cargo.toml): fat LTO, one codegen unit, stripped (docs/benchmarks.md).
    args += listOf("build", "--profile", "mobile", "--locked", "-p", "hybridflow-ffi") + features
    commandLine(args)
    inputs.dir("$repositoryRoot/core/src")
    inputs.dir("$repositoryRoot/bindings/ffi/src")
    inputs.file("$repositoryRoot/Cargo.lock")
    targets.forEach { abi -> outputs.dir(rustJniLibs.map { it.dir(abi) }) }
}
val cargoNdkTasks = listOfNotNull(
    cargoNdk("cargoNdk", ggmlAbis, if (lean) listOf("--no-default-features", "--features", "ggml") else emptyList()),
    if (lean) null else cargoNdk("cargoNdkArmv7", listOf("armeabi-v7a"), listOf("--no-default-features", "--features", "mistralrs")),
)

// The core's build script leaves llama.cpp's libraries in the profile directory of each target;
// llama.cpp links the NDK's shared C++ runtime, which ships beside them.
val rustTriples = mapOf("arm64-v8a" to "aarch64-linux-android", "armeabi-v7a" to "armv7-linux-androideabi", "x86_64" to "x86_64-linux-android")
val ndkLibDirs = mapOf("arm64-v8a" to "aarch64-linux-android", "armeabi-v7a" to "arm-linux-androideabi", "x86_64" to "x86_64-linux-android")
val ggmlLibraries by tasks.registering(Copy::class) {
    dependsOn(cargoNdkTasks)
    val targetDir = System.getenv("CARGO_TARGET_DIR") ?: "$repositoryRoot/target"
    abis.forEach { abi ->
        from("$targetDir/${rustTriples.getValue(abi)}/mobile") {
            include("libllama*.so", "libggml*.so")
            if (lean) exclude("libggml-vulkan.so") // left by an earlier full build
            into(abi)
        }
        from(fileTree(android.ndkDirectory.resolve("toolchains/llvm/prebuilt")) {
            include("*/sysroot/usr/lib/${ndkLibDirs.getValue(abi)}/libc++_shared.so")
        }) {
            eachFile { path = "$abi/$name" }
        }
    }
    includeEmptyDirs = false
    into(rustJniLibs)
}

tasks.named("preBuild") { dependsOn(cargoNdkTasks, ggmlLibraries) }
