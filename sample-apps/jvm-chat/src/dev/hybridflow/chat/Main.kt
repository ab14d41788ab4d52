// jvm-chat: the terminal chat in Kotlin, built only on the published Kotlin API
// (HybridFlowClient, its Flow of events, device state and budgets). Reads questions from stdin;
// slash commands simulate the phone's state. Configured by environment variables:
// HYBRIDFLOW_EDGE_MODEL (GGUF path), HYBRIDFLOW_CLOUD_URL / HYBRIDFLOW_CLOUD_MODEL /
// HYBRIDFLOW_API_KEY (optional cloud), HYBRIDFLOW_STATE_DIR (budgets; default ~/.cache/hybridflow/jvm-chat).
package dev.hybridflow.chat

import dev.hybridflow.ApiKey
import dev.hybridflow.CloudEndpoint
import dev.hybridflow.DeviceState
import dev.hybridflow.Event
import dev.hybridflow.HybridFlowClient
import dev.hybridflow.HybridFlowConfig
import dev.hybridflow.HybridFlowException
import dev.hybridflow.LoadProgress
import dev.hybridflow.Network
import dev.hybridflow.QueryStep
import dev.hybridflow.Side
import dev.hybridflow.SubtaskOutcome
import dev.hybridflow.Thermal
import dev.hybridflow.Totals
import java.io.File
import kotlinx.coroutines.runBlocking

fun main() = runBlocking {
    val env = System.getenv()
    val edgeModel = env["HYBRIDFLOW_EDGE_MODEL"] ?: run {
        System.err.println("set HYBRIDFLOW_EDGE_MODEL to a GGUF file")
        kotlin.system.exitProcess(2)
    }
    val cloudUrl = env["HYBRIDFLOW_CLOUD_URL"]
    val cloud = cloudUrl?.let {
        CloudEndpoint(
            baseUrl = it,
            model = env["HYBRIDFLOW_CLOUD_MODEL"] ?: "qwen2.5-coder-0.5b-instruct",
            apiKey = env["HYBRIDFLOW_API_KEY"]?.let(::ApiKey),
            inputPricePerMillionTokens = 0.15,
            outputPricePerMillionTokens = 0.60,
        )
    }
    println(if (cloud == null) "cloud: none configured (set HYBRIDFLOW_CLOUD_URL): everything runs on the edge" else "cloud: ${cloud.model} at ${cloud.baseUrl}")
    val stateDir = env["HYBRIDFLOW_STATE_DIR"] ?: File(System.getProperty("user.home"), ".cache/hybridflow/jvm-chat").path
    val config = HybridFlowConfig(edgeModelPath = edgeModel, cloud = cloud, stateDir = stateDir)
    try {
        HybridFlowClient.open(config, ::showProgress).use { client -> chat(client) }
    } catch (e: HybridFlowException) {
        System.err.println("cannot start: ${e.message}")
        kotlin.system.exitProcess(1)
    }
}

private fun showProgress(progress: LoadProgress) = when (progress) {
    is LoadProgress.Checking -> System.err.println("edge: checking the model file")
    is LoadProgress.Loading -> System.err.println("edge: loading ${progress.architecture} model (${progress.fileBytes / 1_000_000} MB)...")
    is LoadProgress.Ready -> System.err.println("edge: ready in ${progress.loadTimeMs} ms")
}

private suspend fun chat(client: HybridFlowClient) {
    var device = DeviceState(network = Network.WIFI)
    println("Type a question, or /offline, /online, /cellular, /metered, /battery <percent>, /charging, /budget.")
    while (true) {
        print("> ")
        System.out.flush()
        val line = readlnOrNull()?.trim() ?: break
        when {
            line.isEmpty() -> continue
            line == "/budget" -> {
                val status = client.budgetStatus()
                println("today: ${status.today.cloudRequests} cloud calls, ${status.today.cloudTokens} tokens, cost ${"%.6f".format(status.today.cost)}")
            }
            line.startsWith("/") -> {
                val changed = deviceCommand(line.removePrefix("/"), device)
                if (changed == null) {
                    println("commands: /offline /online /cellular /metered /battery <percent> /charging /budget")
                } else {
                    device = changed
                    client.setDeviceState(device)
                    println("device: $device")
                }
            }
            else -> ask(client, line)
        }
    }
}

/** The device state a slash command simulates, or null for an unknown command. */
internal fun deviceCommand(command: String, device: DeviceState): DeviceState? {
    val words = command.split(" ").filter { it.isNotEmpty() }
    return when (words.firstOrNull()) {
        "offline" -> device.copy(network = Network.NONE)
        "online", "wifi" -> device.copy(network = Network.WIFI)
        "cellular" -> device.copy(network = Network.CELLULAR)
        "metered" -> device.copy(network = Network.METERED)
        "charging" -> device.copy(charging = true)
        "battery" -> words.getOrNull(1)?.toFloatOrNull()?.let { device.copy(batteryLevel = (it / 100f).coerceIn(0f, 1f), charging = false) }
        else -> null
    }
}

private fun side(side: Side) = side.name.lowercase()

private suspend fun ask(client: HybridFlowClient, question: String) {
    var streaming: String? = null
    fun endStream() {
        if (streaming != null) println()
        streaming = null
    }
    try {
        client.askStreaming(question).collect { event ->
            when (event) {
                is Event.PlanningStarted -> { endStream(); println("planning on the ${side(event.side)} (${event.reason}) [${event.servedBy}]...") }
                is Event.PlanReady -> {
                    endStream()
                    val direct = event.directReason
                    if (direct != null) {
                        println("plan: answer directly ($direct)")
                    } else {
                        println("plan: ${event.subtasks.size} subtasks")
                        event.subtasks.forEach { s ->
                            val deps = if (s.dependsOn.isEmpty()) "" else "  <- ${s.dependsOn.joinToString()}"
                            println("  ${s.id} [${s.kind.name.lowercase()}, ${s.difficulty.name.lowercase()}] ${s.task}$deps")
                        }
                    }
                }
                is Event.CloudRefused -> {
                    endStream()
                    val step = when (val s = event.step) {
                        is QueryStep.Plan -> "planning"
                        is QueryStep.Subtask -> s.id
                        is QueryStep.Answer -> "the answer"
                    }
                    println("! the cloud request of $step was not sent: gate ${event.gate}")
                }
                is Event.SubtaskStarted -> {
                    endStream()
                    val retry = if (event.attempt > 1) " (attempt ${event.attempt})" else ""
                    println("${event.id}: on the ${side(event.side)}$retry: ${event.reason} [${event.servedBy}]")
                }
                is Event.Token -> {
                    val stream = event.subtaskId ?: "answer"
                    if (streaming != stream) {
                        endStream()
                        if (event.subtaskId != null) print("  ${event.subtaskId} ")
                        streaming = stream
                    }
                    // Subtask text shows as progress dots; the answer streams in full.
                    print(if (event.subtaskId == null) event.text else ".")
                    System.out.flush()
                }
                is Event.AnswerReset -> {
                    endStream()
                    println("! the answer so far is discarded: it starts again")
                }
                is Event.AnswerChecked -> {
                    endStream()
                    val verdict = if (event.escalated) "escalated to the cloud" else "the edge's answer stands"
                    println("? the edge's confidence (mean token log-probability) ${"%.3f".format(event.confidence)}: $verdict (${event.reason})")
                }
                is Event.SubtaskFinished -> {
                    endStream()
                    val status = when (val outcome = event.outcome) {
                        is SubtaskOutcome.Done -> "done"
                        is SubtaskOutcome.Failed -> "failed: ${outcome.error}"
                        is SubtaskOutcome.Skipped -> "skipped (needs ${outcome.failedDependency})"
                    }
                    println("${event.id}: $status in ${event.latencyMs} ms")
                }
                is Event.AnswerStarted -> { endStream(); println("answer on the ${side(event.side)}: ${event.reason} [${event.servedBy}]") }
                is Event.Answer -> {
                    val streamedAsAnswer = streaming == "answer"
                    endStream()
                    if (!streamedAsAnswer) println("answer:\n${event.text.trim()}")
                    println(totalsLine(event.totals))
                }
            }
        }
    } catch (e: HybridFlowException) {
        endStream()
        println("[${e.message}]")
    }
}

private fun totalsLine(t: Totals) =
    "-- edge: ${t.edge.calls} calls, ${t.edge.promptTokens}+${t.edge.completionTokens} tokens | " +
        "cloud: ${t.cloud.calls} calls, ${t.cloud.promptTokens}+${t.cloud.completionTokens} tokens, cost ${"%.6f".format(t.cloudCost)} | " +
        "${t.subtasks} subtasks (${t.subtasksOnCloud} on cloud, ${t.failedSubtasks} failed) | ${"%.2f".format(t.wallTimeMs.toDouble() / 1000)} s"
