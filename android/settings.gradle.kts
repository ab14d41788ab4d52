// The HybridFlow Android library (AAR). Open this folder in Android Studio, or run
// `./gradlew :hybridflow:assembleRelease` (see README.md for the toolchain).
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}

dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}

rootProject.name = "hybridflow-android"
include(":hybridflow")
