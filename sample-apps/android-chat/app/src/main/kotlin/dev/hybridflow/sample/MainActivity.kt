// Screens: Model (download with progress and resume, or pick a file), Chat (live plan with each
// subtask's side and reason, streamed answer, per-answer totals against the budget), Settings
// (cloud endpoint, API key kept with the Android Keystore, daily budget).
package dev.hybridflow.sample

import android.os.Bundle
import androidx.activity.ComponentActivity
import androidx.activity.compose.rememberLauncherForActivityResult
import androidx.activity.compose.setContent
import androidx.activity.result.contract.ActivityResultContracts
import androidx.compose.foundation.layout.Arrangement
import androidx.compose.foundation.layout.Column
import androidx.compose.foundation.layout.Row
import androidx.compose.foundation.layout.fillMaxSize
import androidx.compose.foundation.layout.fillMaxWidth
import androidx.compose.foundation.layout.padding
import androidx.compose.foundation.lazy.LazyColumn
import androidx.compose.foundation.lazy.items
import androidx.compose.material3.AssistChip
import androidx.compose.material3.Button
import androidx.compose.material3.Card
import androidx.compose.material3.LinearProgressIndicator
import androidx.compose.material3.MaterialTheme
import androidx.compose.material3.OutlinedTextField
import androidx.compose.material3.Tab
import androidx.compose.material3.TabRow
import androidx.compose.material3.Text
import androidx.compose.runtime.Composable
import androidx.compose.runtime.getValue
import androidx.compose.runtime.mutableIntStateOf
import androidx.compose.runtime.mutableStateOf
import androidx.compose.runtime.remember
import androidx.compose.runtime.setValue
import androidx.compose.ui.Modifier
import androidx.compose.ui.text.input.PasswordVisualTransformation
import androidx.compose.ui.unit.dp
import androidx.lifecycle.viewmodel.compose.viewModel
import androidx.lifecycle.viewModelScope
import dev.hybridflow.Side
import dev.hybridflow.SubtaskOutcome
import kotlinx.coroutines.launch

class MainActivity : ComponentActivity() {
    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContent { MaterialTheme { App() } }
    }
}

@Composable
fun App(model: ChatViewModel = viewModel()) {
    var tab by remember { mutableIntStateOf(if (model.models.isPresent()) 0 else 2) }
    Column(Modifier.fillMaxSize()) {
        TabRow(selectedTabIndex = tab) {
            listOf("Chat", "Settings", "Model").forEachIndexed { index, title ->
                Tab(selected = tab == index, onClick = { tab = index }, text = { Text(title) })
            }
        }
        model.loading.value?.let { Text(it, Modifier.padding(8.dp)) }
        when (tab) {
            0 -> ChatScreen(model)
            1 -> SettingsScreen(model)
            else -> ModelScreen(model)
        }
    }
}

@Composable
fun ChatScreen(model: ChatViewModel) {
    var question by remember { mutableStateOf("") }
    Column(Modifier.fillMaxSize().padding(8.dp)) {
        model.device.value?.let { d ->
            Text("${d.network.name.lowercase()} · battery ${(d.batteryLevel * 100).toInt()}%${if (d.charging) " charging" else ""} · thermal ${d.thermal.name.lowercase()}",
                style = MaterialTheme.typography.labelSmall)
        }
        model.runsOn.value?.let { Text("edge model: $it", style = MaterialTheme.typography.labelSmall) }
        model.budget.value?.let { b ->
            val limit = b.budgets.perDay.money?.let { " of %.4f".format(it) } ?: ""
            Text("today: ${b.today.cloudRequests} cloud calls, cost %.4f$limit".format(b.today.cost), style = MaterialTheme.typography.labelSmall)
        }
        LazyColumn(Modifier.weight(1f), verticalArrangement = Arrangement.spacedBy(8.dp)) {
            items(model.turns) { turn -> TurnCard(turn) }
        }
        Row(Modifier.fillMaxWidth()) {
            OutlinedTextField(question, { question = it }, Modifier.weight(1f), label = { Text("Ask") })
            Button(onClick = { model.ask(question); question = "" }, enabled = question.isNotBlank()) { Text("Send") }
            Button(onClick = model::stop) { Text("Stop") }
        }
    }
}

@Composable
fun TurnCard(turn: Turn) {
    Card(Modifier.fillMaxWidth()) {
        Column(Modifier.padding(8.dp)) {
            Text(turn.question, style = MaterialTheme.typography.titleSmall)
            turn.planning.value?.let { Text(it, style = MaterialTheme.typography.labelSmall) }
            turn.steps.forEach { step ->
                Row(horizontalArrangement = Arrangement.spacedBy(6.dp)) {
                    AssistChip(onClick = {}, label = { Text(when (step.side) { Side.EDGE -> "phone"; Side.CLOUD -> "cloud"; null -> "waiting" }) })
                    Column {
                        Text("${step.subtask.id}: ${step.subtask.task}")
                        val state = when (step.outcome) {
                            is SubtaskOutcome.Done -> "done"
                            is SubtaskOutcome.Failed -> "failed"
                            is SubtaskOutcome.Skipped -> "skipped"
                            null -> if (step.side != null) "running (${step.tokens} tokens)" else ""
                        }
                        Text("${step.reason} $state", style = MaterialTheme.typography.labelSmall)
                    }
                }
            }
            Text(turn.answer.value)
            turn.error.value?.let { Text(it, color = MaterialTheme.colorScheme.error) }
            turn.totals.value?.let { t ->
                Text("phone ${t.edge.completionTokens} tokens · cloud ${t.cloud.promptTokens}+${t.cloud.completionTokens} tokens · cost %.5f · %.1f s".format(t.cloudCost, t.wallTimeMs.toDouble() / 1000),
                    style = MaterialTheme.typography.labelSmall)
            }
        }
    }
}

@Composable
fun SettingsScreen(model: ChatViewModel) {
    val current = model.settings.value
    var url by remember { mutableStateOf(current.cloudUrl) }
    var cloudModel by remember { mutableStateOf(current.cloudModel) }
    var apiKey by remember { mutableStateOf("") }
    var budget by remember { mutableStateOf(current.dailyBudget?.toString() ?: "") }
    Column(Modifier.padding(8.dp), verticalArrangement = Arrangement.spacedBy(8.dp)) {
        OutlinedTextField(url, { url = it }, label = { Text("Cloud endpoint (https://…/v1), empty for phone only") })
        OutlinedTextField(cloudModel, { cloudModel = it }, label = { Text("Cloud model") })
        OutlinedTextField(apiKey, { apiKey = it }, label = { Text("API key (stored encrypted; leave empty to keep)") },
            visualTransformation = PasswordVisualTransformation())
        OutlinedTextField(budget, { budget = it }, label = { Text("Daily budget (money), empty for none") })
        Button(onClick = { model.saveSettings(Settings(url.trim(), cloudModel.trim(), budget.toDoubleOrNull()), apiKey) }) { Text("Save") }
        Button(onClick = model::resetBudgets) { Text("Reset budgets") }
    }
}

@Composable
fun ModelScreen(model: ChatViewModel) {
    var url by remember { mutableStateOf("") }
    val picker = rememberLauncherForActivityResult(ActivityResultContracts.OpenDocument()) { uri ->
        if (uri != null) model.viewModelScope.launch { model.models.import(uri); model.open() }
    }
    Column(Modifier.padding(8.dp), verticalArrangement = Arrangement.spacedBy(8.dp)) {
        Text(if (model.models.isPresent()) "Model: ${model.models.model.length() / 1_000_000} MB on the phone" else "No model yet")
        OutlinedTextField(url, { url = it }, label = { Text("GGUF download URL") })
        Button(onClick = { model.download(url.trim()) }, enabled = url.isNotBlank()) { Text("Download (resumes)") }
        model.downloadProgress.value?.let { LinearProgressIndicator(progress = { it }, modifier = Modifier.fillMaxWidth()) }
        Button(onClick = { picker.launch(arrayOf("*/*")) }) { Text("Pick a GGUF file") }
    }
}
