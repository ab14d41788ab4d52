// The Kotlin API on the JVM against the real library: the real edge model (mistral.rs) and the
// real test cloud (llama-server). Run by scripts/kotlin-test.sh, itself run by scripts/test.sh.
package dev.hybridflow

import java.io.File
import java.lang.management.ManagementFactory
import java.nio.file.Files
import java.util.Collections
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.cancelAndJoin
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNotNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test

/** Short enough to be answered without planning (so it decodes at once), long to answer. */
private const val LONG_DIRECT_QUERY = "Write a long story about dragons."

/** CPU time this process (the JVM and the Rust library's threads) spends over [millis]. */
private suspend fun cpuNanosOver(millis: Long): Long {
    val os = ManagementFactory.getOperatingSystemMXBean() as com.sun.management.OperatingSystemMXBean
    val before = os.processCpuTime
    delay(millis)
    return os.processCpuTime - before
}

class HybridFlowClientTest {
    private val edgeModel = System.getenv("HYBRIDFLOW_EDGE_MODEL") ?: error("HYBRIDFLOW_EDGE_MODEL is not set")
    private val cloudUrl = System.getenv("HYBRIDFLOW_CLOUD_URL") ?: error("HYBRIDFLOW_CLOUD_URL is not set")
    private val cloudModel = System.getenv("HYBRIDFLOW_CLOUD_MODEL") ?: "qwen2.5-coder-0.5b-instruct"
    private val multiStep = "Tom has 3 boxes with 4 apples each. He gives away 5 apples. How many apples does he have left?"

    private fun config(routing: Routing, withCloud: Boolean = true, decomposition: Decomposition? = null) = HybridFlowConfig(
        edgeModelPath = edgeModel,
        cloud = if (withCloud) CloudEndpoint(baseUrl = cloudUrl, model = cloudModel, apiKey = ApiKey("sk-kotlin-test-secret")) else null,
        stateDir = Files.createTempDirectory("hybridflow-kotlin").toString(),
        routing = routing,
        decomposition = decomposition,
    )

    private fun <T> withClient(config: HybridFlowConfig, body: suspend (HybridFlowClient) -> T): T = runBlocking {
        HybridFlowClient.open(config).use { body(it) }
    }

    @Test
    fun asksWithTheRealEdgeModel() = withClient(config(Routing.EDGE_ONLY)) { client ->
        val answer = client.ask("What is the capital of France?")
        assertTrue("an answer: ${answer.text}", answer.text.isNotBlank())
        assertTrue(answer.totals.edge.calls >= 1)
        assertEquals(0, answer.totals.cloud.calls)
    }

    @Test
    fun theGgmlEngineIsChosenInTheConfigurationAndReportsWhereItRuns() = runBlocking {
        val ready = Collections.synchronizedList(mutableListOf<LoadProgress.Ready>())
        val config = config(Routing.EDGE_ONLY, withCloud = false).copy(edgeEngine = EdgeEngine.GGML, gpu = GpuUse.OFF)
        HybridFlowClient.open(config) { if (it is LoadProgress.Ready) ready.add(it) }.use { client ->
            // The edge engine tests' question, which the 135M model answers on both engines.
            val events = client.askStreaming("What is the capital of France? Answer in one sentence.").toList()
            // The one step of a direct answer, and what served it.
            assertEquals(listOf("ggml on CPU"), events.filterIsInstance<Event.SubtaskStarted>().map { it.servedBy })
            val answer = events.last() as Event.Answer
            assertTrue("an answer: ${answer.text}", answer.text.contains("Paris"))
            assertEquals(1, answer.totals.edge.calls)
        }
        assertEquals(EdgeEngine.GGML, ready.single().engine)
        assertEquals("CPU", ready.single().device)
        assertEquals(null, ready.single().gpuUnavailable)
    }

    @Test
    fun asksWithTheRealCloudServer() = withClient(config(Routing.CLOUD_ONLY)) { client ->
        val answer = client.ask(multiStep)
        assertTrue(answer.text.isNotBlank())
        assertTrue("cloud calls: ${answer.totals}", answer.totals.cloud.calls >= 1)
        assertTrue(answer.totals.cloud.completionTokens > 0)
        assertEquals("spending recorded in the store", answer.totals.cloud.calls.toLong(), client.budgetStatus().today.cloudRequests)
    }

    @Test
    fun byDefaultAQueryIsAnsweredInOneStepOnTheSideTheRouterPicks() = withClient(config(Routing.LEARNED)) { client ->
        val events = client.askStreaming(multiStep).toList()
        assertTrue("no planning call: $events", events.none { it is Event.PlanningStarted })
        val plan = events.filterIsInstance<Event.PlanReady>().single()
        // The query-level decision weighed a plan and declined it, with its measured numbers.
        val reason = plan.directReason
        assertTrue("$reason", reason is DirectReason.NotWorthDecomposing && reason.why.startsWith("a plan gains"))
        val route = events.filterIsInstance<Event.SubtaskStarted>().single()
        val explanation = route.explanation!!
        assertEquals("the measured gain clears the threshold: $route", Side.CLOUD, route.side)
        assertTrue("$explanation", explanation.predictedGain > explanation.threshold)
        assertEquals(1, (events.last() as Event.Answer).totals.cloud.calls)
    }

    @Test
    fun flowDeliversEventsInOrderAndEndsWithTheAnswer() = withClient(config(Routing.BY_DIFFICULTY, decomposition = Decomposition.LONG_QUERIES)) { client ->
        val events = client.askStreaming(multiStep).toList()
        val last = events.last()
        assertTrue("last event is the answer: $last", last is Event.Answer)
        assertEquals(1, events.count { it is Event.Answer })
        val planAt = events.indexOfFirst { it is Event.PlanReady }
        assertTrue("a plan before the answer", planAt in 0 until events.lastIndex)
        val plan = (events[planAt] as Event.PlanReady).subtasks
        val started = mutableSetOf<String>()
        val finished = mutableSetOf<String>()
        for (event in events) {
            when (event) {
                is Event.SubtaskStarted -> {
                    assertTrue("known subtask ${event.id}", plan.any { it.id == event.id })
                    assertTrue("started after its dependencies finished", plan.first { it.id == event.id }.dependsOn.all { it in finished })
                    assertTrue(event.reason.isNotBlank())
                    started += event.id
                }
                is Event.SubtaskFinished -> {
                    assertTrue("finished after it started: ${event.id}", event.id in started || event.outcome is SubtaskOutcome.Skipped)
                    finished += event.id
                }
                is Event.Token -> event.subtaskId?.let { assertTrue("tokens of a started subtask", it in started) }
                else -> {}
            }
        }
        assertEquals("every planned subtask finished", plan.map { it.id }.toSet(), finished)
        // An attempt that fails after streaming part of the answer is followed by AnswerReset.
        val sinceReset = events.drop(events.indexOfLast { it is Event.AnswerReset } + 1)
        val streamed = sinceReset.filterIsInstance<Event.Token>().filter { it.subtaskId == null }.joinToString("") { it.text }
        assertEquals("the answer is what was streamed", streamed.trim(), (last as Event.Answer).text.trim())
    }

    @Test
    fun cancellingTheCollectorCancelsTheQuery() = withClient(config(Routing.EDGE_ONLY, withCloud = false)) { client ->
        var busy = 0L
        // The collector stops at the first token, after measuring the CPU the engine burns while
        // it decodes; the Rust side must then go idle (the engine's sequence is cancelled).
        client.askStreaming(LONG_DIRECT_QUERY).first { event ->
            if (event is Event.Token) busy = cpuNanosOver(1_000)
            event is Event.Token
        }
        delay(300)
        val idle = cpuNanosOver(1_000)
        assertTrue("decoding should keep a core busy: ${busy / 1e6} ms of CPU in 1 s", busy > 500_000_000)
        assertTrue("the engine went on after the collector stopped: ${idle / 1e6} ms vs ${busy / 1e6} ms", idle * 4 < busy)
        // The engine is free again: the next query runs to its end.
        assertTrue(client.ask("Say hello.").text.isNotBlank())
    }

    @Test
    fun cancellingACoroutineCancelsAsk() = withClient(config(Routing.EDGE_ONLY, withCloud = false)) { client ->
        coroutineScope {
            val job = launch {
                client.ask(LONG_DIRECT_QUERY)
                fail("the query should have been cancelled")
            }
            delay(1_500)
            val busy = cpuNanosOver(1_000)
            withTimeout(5_000) { job.cancelAndJoin() }
            delay(300)
            val idle = cpuNanosOver(1_000)
            assertTrue("decoding should keep a core busy: ${busy / 1e6} ms of CPU in 1 s", busy > 500_000_000)
            assertTrue("the engine went on after the coroutine was cancelled: ${idle / 1e6} ms vs ${busy / 1e6} ms", idle * 4 < busy)
        }
        assertTrue(client.ask("Say hello.").text.isNotBlank())
    }

    @Test
    fun invalidConfigurationRaisesInvalidConfig() = runBlocking {
        val cases = listOf(
            HybridFlowConfig(cloud = CloudEndpoint(baseUrl = "http://example.com/v1", model = "m")) to "https",
            HybridFlowConfig() to "neither",
            HybridFlowConfig(edgeModelPath = edgeModel, budgets = Budgets(perDay = Limits(money = 1.0))) to "state_dir",
            HybridFlowConfig(edgeModelPath = edgeModel, policy = AppPolicy(offload = Offload.ALLOWED, minBatteryForCloud = 2.0f)) to "min_battery",
            HybridFlowConfig(edgeModelPath = edgeModel, policy = AppPolicy(offload = Offload.ALLOWED, minBatteryForCloud = Float.NaN)) to "min_battery",
            HybridFlowConfig(edgeModelPath = edgeModel, maxQueryChars = 0) to "at least 1",
            HybridFlowConfig(edgeModelPath = edgeModel, edgeEngine = EdgeEngine.MISTRAL_RS, gpu = GpuUse.VULKAN, stateDir = Files.createTempDirectory("hf").toString()) to "ggml engine",
            HybridFlowConfig(edgeModelPath = edgeModel, gpu = GpuUse.VULKAN) to "state directory",
        )
        for ((config, mentions) in cases) {
            try {
                HybridFlowClient.open(config).close()
                fail("accepted: $config")
            } catch (e: HybridFlowException.InvalidConfig) {
                assertTrue("'${e.message}' mentions $mentions", e.message!!.contains(mentions))
            }
        }
        try {
            HybridFlowClient.open(HybridFlowConfig(edgeModelPath = "/nonexistent/model.gguf")).close()
            fail("a missing model loaded")
        } catch (e: HybridFlowException.ModelLoad) {
            assertTrue(e.message!!.contains("not found"))
        }
    }

    @Test
    fun oversizedQueryRaisesInvalidQuery() = withClient(config(Routing.EDGE_ONLY, withCloud = false).copy(maxQueryChars = 50)) { client ->
        try {
            client.ask("x".repeat(51))
            fail("an oversized query ran")
        } catch (e: HybridFlowException.InvalidQuery) {
            assertTrue(e.message!!.contains("limit"))
        }
    }

    @Test
    fun aStateDirectoryInUseIsRefusedAndKept() = runBlocking {
        val shared = config(Routing.EDGE_ONLY, withCloud = false)
        HybridFlowClient.open(shared).use { first ->
            try {
                HybridFlowClient.open(shared).close()
                fail("a second client opened the same state directory")
            } catch (e: HybridFlowException.InvalidConfig) {
                assertTrue(e.message!!, e.message!!.contains("in use"))
            }
            assertTrue("the first client still works", first.ask("What is 2 + 2?").text.isNotBlank())
        }
        HybridFlowClient.open(shared).close()
        val aside = File(shared.stateDir!!).parentFile.listFiles { f -> f.name.startsWith(File(shared.stateDir!!).name + ".damaged") }
        assertEquals("nothing moved aside", 0, aside!!.size)
    }

    @Test
    fun twoClientsAnswerConcurrently() = runBlocking {
        val first = HybridFlowClient.open(config(Routing.EDGE_ONLY, withCloud = false))
        val second = HybridFlowClient.open(config(Routing.CLOUD_ONLY))
        first.use { a ->
            second.use { b ->
                val answers = listOf(
                    async { a.ask("What is 2 + 2?") },
                    async { b.ask("What is 3 + 3?") },
                    async { a.ask("Name a primary colour.") },
                ).awaitAll()
                answers.forEach { assertTrue(it.text.isNotBlank()) }
                assertEquals(0, answers[0].totals.cloud.calls)
                assertTrue(answers[1].totals.cloud.calls >= 1)
            }
        }
    }

    @Test
    fun offlineDeviceKeepsEverySubtaskOnTheEdge() = withClient(config(Routing.LEARNED)) { client ->
        client.setDeviceState(DeviceState(network = Network.NONE))
        val events = client.askStreaming(multiStep).toList()
        val routes = events.filterIsInstance<Event.SubtaskStarted>()
        assertTrue(routes.isNotEmpty())
        routes.forEach {
            assertEquals(Side.EDGE, it.side)
            assertEquals(Gate.OFFLINE, it.explanation?.gate)
        }
        // The edge's one-step answer is checked by its real confidence; the gate keeps it.
        val checked = events.filterIsInstance<Event.AnswerChecked>().single()
        assertTrue("a mean log-probability: ${checked.confidence}", checked.confidence < 0.0 && checked.confidence.isFinite())
        assertFalse(checked.escalated)
        assertEquals(Gate.OFFLINE, checked.explanation?.gate)
        assertEquals(0, (events.last() as Event.Answer).totals.cloud.calls)
        assertNotNull(client.routerStatistics())
    }

    @Test
    fun aClientClosedAndReopenedAtOnceOnTheSameStateDirectoryWorks() = runBlocking {
        val shared = config(Routing.EDGE_ONLY, withCloud = false)
        repeat(3) {
            val client = HybridFlowClient.open(shared)
            // A query still running when close is called: close cancels it and waits for it.
            val running = launch { runCatching { client.ask(multiStep) } }
            delay(200)
            client.close()
            running.join()
        }
        HybridFlowClient.open(shared).use { assertEquals(0L, it.budgetStatus().today.cloudRequests) }
    }

    @Test
    fun theKeyIsAbsentFromEveryObjectTheAppCanHold() {
        val key = ApiKey("sk-kotlin-test-secret")
        val endpoint = CloudEndpoint(baseUrl = cloudUrl, model = cloudModel, apiKey = key)
        val config = config(Routing.LEARNED).copy(cloud = endpoint)
        for (printed in listOf(key.toString(), endpoint.toString(), config.toString(), "$key $endpoint $config")) {
            assertFalse(printed, printed.contains("sk-kotlin-test-secret"))
        }
        assertTrue(key.toString().contains("redacted"))
    }

    @Test
    fun aNeverOffloadPolicyThatContradictsTheRoutingIsRefused() = runBlocking {
        try {
            HybridFlowClient.open(config(Routing.CLOUD_ONLY).copy(policy = AppPolicy(offload = Offload.NEVER))).close()
            fail("never-offload with cloud-only routing was accepted")
        } catch (e: HybridFlowException.InvalidConfig) {
            assertTrue(e.message!!, e.message!!.contains("contradicts"))
        }
    }

    @Test
    fun closedClientRaisesClosedAndLogsShowRoutingButNeverTheKey() = runBlocking {
        val logged = Collections.synchronizedList(mutableListOf<String>())
        HybridFlowClient.setLogging(LogLevel.DEBUG) { _, target, message -> logged += "$target $message" }
        val client = HybridFlowClient.open(config(Routing.CLOUD_ONLY))
        assertTrue("readable: $client", client.toString().startsWith("HybridFlowClient(edge="))
        client.ask("What is 2 + 2?")
        client.close()
        client.close() // idempotent
        try {
            client.budgetStatus()
            fail("a closed client answered")
        } catch (e: HybridFlowException.Closed) {
            assertEquals("the client is closed", e.message)
        }
        try {
            client.ask("What is 2 + 2?")
            fail("a closed client answered")
        } catch (e: HybridFlowException.Closed) {
        }
        HybridFlowClient.setLogging(LogLevel.WARN)
        assertTrue("the routing decision is logged: $logged", logged.any { it.startsWith("hybridflow_core") && it.contains("on the Cloud") })
        assertFalse("libraries' debug lines are not passed on", logged.any { it.startsWith("sled") })
        assertFalse(logged.any { it.contains("sk-kotlin-test-secret") })
    }

    @Test
    fun anUnreachableCloudRaisesNetworkWithTheCause() = runBlocking {
        // A port nothing listens on: the connection is refused; cloud-only, so no edge to fall back on.
        val unreachable = config(Routing.CLOUD_ONLY, withCloud = false).copy(
            edgeModelPath = null,
            cloud = CloudEndpoint(baseUrl = "http://127.0.0.1:9/v1", model = "m"),
        )
        HybridFlowClient.open(unreachable).use { client ->
            try {
                client.ask("What is 2 + 2?")
                fail("answered without a cloud")
            } catch (e: HybridFlowException.Network) {
                assertTrue("the cause is named: ${e.message}", e.message!!.contains("refused"))
            }
        }
    }
}
