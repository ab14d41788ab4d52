// The AAR: the Kotlin API (generated bindings + the idiomatic layer shared with the JVM build)
// and libhybridflow_ffi.so for each ABI, built by cargo-ndk from the Rust workspace.
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

// cargo-ndk builds the same crate and feature set as the desktop build, for each Android ABI.
val cargoNdk by tasks.registering(Exec::class) {
    group = "build"
    description = "Builds libhybridflow_ffi.so for ${abis.joinToString()} with cargo-ndk"
    workingDir = repositoryRoot
    val args = mutableListOf("cargo", "ndk", "--platform", "26", "-o", rustJniLibs.get().asFile.path)
    abis.forEach { args += listOf("-t", it) }
    // The `mobile` profile (Cargo.toml): fat LTO, one codegen unit, stripped (docs/benchmarks.md).
    args += listOf("build", "--profile", "mobile", "--locked", "-p", "hybridflow-ffi")
    commandLine(args)
    inputs.dir("$repositoryRoot/core/src")
    inputs.dir("$repositoryRoot/bindings/ffi/src")
    inputs.file("$repositoryRoot/Cargo.lock")
    outputs.dir(rustJniLibs)
}

tasks.named("preBuild") { dependsOn(cargoNdk) }
