// The chat's state: the client (opened once a model is on the phone), the turns with their live
// plans, routes and streamed answers, the device state, and the budget.
package dev.hybridflow.sample

import android.app.Application
import android.content.Context
import androidx.compose.runtime.mutableStateListOf
import androidx.compose.runtime.mutableStateOf
import androidx.lifecycle.AndroidViewModel
import androidx.lifecycle.viewModelScope
import dev.hybridflow.ApiKey
import dev.hybridflow.BudgetStatus
import dev.hybridflow.Budgets
import dev.hybridflow.CloudEndpoint
import dev.hybridflow.DeviceState
import dev.hybridflow.Event
import dev.hybridflow.GpuUse
import dev.hybridflow.HybridFlowClient
import dev.hybridflow.HybridFlowConfig
import dev.hybridflow.HybridFlowException
import dev.hybridflow.Limits
import dev.hybridflow.LoadProgress
import dev.hybridflow.PlannedSubtask
import dev.hybridflow.QueryStep
import dev.hybridflow.Side
import dev.hybridflow.SubtaskOutcome
import dev.hybridflow.Totals
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.Job
import kotlinx.coroutines.launch

/** One subtask as the plan view shows it. */
data class StepView(
    val subtask: PlannedSubtask,
    val side: Side? = null,
    val reason: String = "",
    val outcome: SubtaskOutcome? = null,
    val tokens: Int = 0,
)

/** One question and everything the SDK reported while answering it. */
class Turn(val question: String) {
    val steps = mutableStateListOf<StepView>()
    val answer = mutableStateOf("")
    val totals = mutableStateOf<Totals?>(null)
    val error = mutableStateOf<String?>(null)
    val planning = mutableStateOf<String?>(null)
}

data class Settings(val cloudUrl: String, val cloudModel: String, val dailyBudget: Double?)

class ChatViewModel(application: Application) : AndroidViewModel(application) {
    private val preferences = application.getSharedPreferences("hybridflow-settings", Context.MODE_PRIVATE)
    val secrets = SecretStore(application)
    val models = ModelFiles(application)

    val turns = mutableStateListOf<Turn>()
    val loading = mutableStateOf<String?>(null)
    val downloadProgress = mutableStateOf<Float?>(null)
    val device = mutableStateOf<DeviceState?>(null)
    val budget = mutableStateOf<BudgetStatus?>(null)
    /** What runs the edge model ("ggml on Vulkan0 (Adreno …)", or the CPU and why not the GPU). */
    val runsOn = mutableStateOf<String?>(null)
    val settings = mutableStateOf(
        Settings(
            preferences.getString("cloudUrl", "") ?: "",
            preferences.getString("cloudModel", "") ?: "",
            preferences.getString("dailyBudget", null)?.toDoubleOrNull(),
        )
    )
    private var client: HybridFlowClient? = null
    private var running: Job? = null

    init {
        viewModelScope.launch {
            deviceStates(application).collect { state ->
                device.value = state
                client?.setDeviceState(state)
            }
        }
        if (models.isPresent()) open()
    }

    fun saveSettings(newSettings: Settings, apiKey: String?) {
        preferences.edit()
            .putString("cloudUrl", newSettings.cloudUrl)
            .putString("cloudModel", newSettings.cloudModel)
            .putString("dailyBudget", newSettings.dailyBudget?.toString())
            .apply()
        if (!apiKey.isNullOrEmpty()) secrets.saveApiKey(apiKey)
        settings.value = newSettings
        open()
    }

    fun download(url: String) = viewModelScope.launch {
        try {
            models.download(url) { done, total -> downloadProgress.value = if (total > 0) done.toFloat() / total else null }
            downloadProgress.value = null
            open()
        } catch (e: Exception) {
            loading.value = "download interrupted (${e.message}); start it again to resume"
        }
    }

    /** (Re)opens the client with the current model and settings; `close` waits until the old
     * client released the state directory, so the new one can open it. */
    fun open() = viewModelScope.launch {
        client?.close()
        client = null
        val s = settings.value
        val cloud = s.cloudUrl.takeIf { it.isNotBlank() }?.let {
            CloudEndpoint(baseUrl = it, model = s.cloudModel, apiKey = secrets.apiKey()?.let(::ApiKey))
        }
        val app = getApplication<Application>()
        val config = HybridFlowConfig(
            edgeModelPath = models.model.path,
            cloud = cloud,
            stateDir = app.filesDir.resolve("hybridflow").path,
            budgets = Budgets(perDay = Limits(money = s.dailyBudget)),
            // The GPU through ggml when it passes the SDK's crash-safe probe, the CPU otherwise.
            gpu = GpuUse.VULKAN,
        )
        try {
            client = HybridFlowClient.open(config) { progress ->
                loading.value = when (progress) {
                    is LoadProgress.Checking -> "checking the model…"
                    is LoadProgress.Loading -> "loading ${progress.architecture} (${progress.fileBytes / 1_000_000} MB)…"
                    is LoadProgress.Ready -> null
                }
                if (progress is LoadProgress.Ready) {
                    runsOn.value = "${progress.engine.name.lowercase()} on ${progress.device}" +
                        (progress.gpuUnavailable?.let { " (GPU not used: $it)" } ?: "")
                }
            }.also { opened -> device.value?.let(opened::setDeviceState) }
            budget.value = client?.budgetStatus()
        } catch (e: HybridFlowException) {
            loading.value = e.message
        }
    }

    fun ask(question: String) {
        val current = client ?: return
        val turn = Turn(question)
        turns += turn
        running = viewModelScope.launch {
            try {
                current.askStreaming(question).collect { event -> apply(turn, event) }
            } catch (e: HybridFlowException) {
                turn.error.value = e.message
            }
            budget.value = current.budgetStatus()
        }
    }

    /** Forgets today's and this month's cloud spending (off the main thread: the store writes). */
    fun resetBudgets() = viewModelScope.launch {
        client?.let {
            it.resetBudgets()
            budget.value = it.budgetStatus()
        }
    }

    /** Cancelling the collector cancels the query in the SDK. */
    fun stop() {
        running?.cancel()
    }

    private fun apply(turn: Turn, event: Event) {
        fun update(id: String, change: (StepView) -> StepView) {
            val index = turn.steps.indexOfFirst { it.subtask.id == id }
            if (index >= 0) turn.steps[index] = change(turn.steps[index])
        }
        when (event) {
            is Event.PlanningStarted -> turn.planning.value = "planning on the ${event.side.name.lowercase()}…"
            is Event.PlanReady -> {
                turn.planning.value = event.directReason?.toString()
                event.subtasks.filter { s -> turn.steps.none { it.subtask.id == s.id } }.forEach { turn.steps += StepView(it) }
            }
            is Event.SubtaskStarted -> update(event.id) { it.copy(side = event.side, reason = event.reason) }
            is Event.Token -> when (val id = event.subtaskId) {
                null -> turn.answer.value += event.text
                else -> update(id) { it.copy(tokens = it.tokens + 1) }
            }
            is Event.SubtaskFinished -> update(event.id) { it.copy(outcome = event.outcome) }
            is Event.AnswerStarted, is Event.AnswerReset -> turn.answer.value = ""
            is Event.AnswerChecked -> if (event.escalated) turn.planning.value = "the phone was unsure: asking the cloud…"
            is Event.CloudRefused -> when (val step = event.step) {
                is QueryStep.Subtask -> update(step.id) { it.copy(reason = "kept on the phone: ${event.gate}") }
                else -> turn.planning.value = "kept on the phone: ${event.gate}"
            }
            is Event.Answer -> {
                turn.answer.value = event.text
                turn.totals.value = event.totals
            }
        }
    }

    override fun onCleared() {
        // viewModelScope is already cancelled here: close on a scope of its own.
        client?.let { closing -> CoroutineScope(Dispatchers.Default).launch { closing.close() } }
    }
}
