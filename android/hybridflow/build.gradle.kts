// The AAR: the Kotlin API (generated bindings + the idiomatic layer shared with the JVM build)
// and, for each ABI, libhybridflow_ffi.so built by cargo-ndk from the Rust workspace with the
// ggml engine's shared libraries beside it (llama, ggml, its CPU variants and Vulkan backend,
// which the engine loads from the directory it runs from).
plugins {
    id("com.android.library")
    id("org.jetbrains.kotlin.android")
}

val repositoryRoot = rootDir.parentFile
val rustJniLibs = layout.buildDirectory.dir("rustJniLibs")
val abis = listOf("arm64-v8a", "armeabi-v7a", "x86_64")

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

// `-Phybridflow.lean=true`: the lean library, the ggml engine alone on the CPU (no mistral.rs, no
// Vulkan backend); about a quarter of the native code per ABI (android/README.md, "Size").
val lean = providers.gradleProperty("hybridflow.lean").map { it.toBoolean() }.getOrElse(false)

// cargo-ndk builds the same crate and feature set as the desktop build (or the lean one), for
// each Android ABI.
val cargoNdk by tasks.registering(Exec::class) {
    group = "build"
    description = "Builds libhybridflow_ffi.so for ${abis.joinToString()} with cargo-ndk"
    workingDir = repositoryRoot
    val args = mutableListOf("cargo", "ndk", "--platform", "26", "-o", rustJniLibs.get().asFile.path)
    abis.forEach { args += listOf("-t", it) }
    // The `mobile` profile (Cargo.toml): fat LTO, one codegen unit, stripped (docs/benchmarks.md).
    args += listOf("build", "--profile", "mobile", "--locked", "-p", "hybridflow-ffi")
    if (lean) args += listOf("--no-default-features", "--features", "ggml")
    commandLine(args)
    inputs.dir("$repositoryRoot/core/src")
    inputs.dir("$repositoryRoot/bindings/ffi/src")
    inputs.file("$repositoryRoot/Cargo.lock")
    outputs.dir(rustJniLibs)
}

// The core's build script leaves llama.cpp's libraries in the profile directory of each target;
// llama.cpp links the NDK's shared C++ runtime, which ships beside them.
val rustTriples = mapOf("arm64-v8a" to "aarch64-linux-android", "armeabi-v7a" to "armv7-linux-androideabi", "x86_64" to "x86_64-linux-android")
val ndkLibDirs = mapOf("arm64-v8a" to "aarch64-linux-android", "armeabi-v7a" to "arm-linux-androideabi", "x86_64" to "x86_64-linux-android")
val ggmlLibraries by tasks.registering(Copy::class) {
    dependsOn(cargoNdk)
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

tasks.named("preBuild") { dependsOn(cargoNdk, ggmlLibraries) }
