// The Android sample chat. Uses the HybridFlow library module from ../../android directly, so
// the app always runs against the SDK in this repository.
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

rootProject.name = "hybridflow-android-chat"
include(":app", ":hybridflow")
project(":hybridflow").projectDir = file("../../android/hybridflow")
