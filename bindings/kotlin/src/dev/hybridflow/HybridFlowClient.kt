// The idiomatic Kotlin face of HybridFlow, beside the uniffi-generated bindings of the same
// package (records, enums, `HybridFlow`, `HybridFlowException`). Shared by the JVM build (tests,
// jvm-chat) and the Android library.
package dev.hybridflow

import kotlinx.coroutines.NonCancellable
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.channels.awaitClose
import kotlinx.coroutines.channels.trySendBlocking
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.buffer
import kotlinx.coroutines.flow.callbackFlow
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext

/**
 * A HybridFlow engine: an on-device model, a cloud endpoint when it pays off, budgets that
 * persist. Open one per app (queries run concurrently on it) and end it with [close] (a suspend
 * function: it waits until running queries stopped and the state directory is released, so a new
 * client can open the same directory right after), or with [use].
 *
 * Every call that touches the disk or waits ([budgetStatus], [resetBudgets], [routerStatistics],
 * [close]) is a suspend function, safe to call from the main thread's coroutines. Listeners and
 * the log callback are called from the SDK's one callback thread.
 */
class HybridFlowClient private constructor(private val engine: HybridFlow, private val description: String) {
    companion object {
        /**
         * Checks [config], loads the edge model and opens the budget store. Throws
         * [HybridFlowException.InvalidConfig] or [HybridFlowException.ModelLoad]; cancelling the
         * coroutine abandons the load.
         */
        suspend fun open(config: HybridFlowConfig, onProgress: (LoadProgress) -> Unit = {}): HybridFlowClient {
            val listener = object : LoadListener {
                override fun onProgress(progress: LoadProgress) = onProgress(progress)
            }
            val cloud = config.cloud?.let { "${it.model} at ${it.baseUrl}" } ?: "none"
            val edge = config.edgeModelPath?.substringAfterLast('/') ?: "none"
            return HybridFlowClient(HybridFlow.open(config, listener), "HybridFlowClient(edge=$edge, cloud=$cloud)")
        }

        /** The SDK's log level, and optionally the app's own logger (which then replaces logcat/stderr). */
        fun setLogging(level: LogLevel, logger: ((LogLevel, String, String) -> Unit)? = null) {
            val sink = logger?.let {
                object : LogSink {
                    override fun log(level: LogLevel, target: String, message: String) = it(level, target, message)
                }
            }
            initLogging(level, sink)
        }
    }

    /** Answers [query]. Cancelling the coroutine cancels every model call of the query. */
    suspend fun ask(query: String): Answer = engine.ask(query)

    /**
     * Answers [query] as a cold flow of events: the plan, each subtask's route and reason, tokens,
     * results, and last [Event.Answer]. The query starts on collection; cancelling the collector
     * cancels the query. Failures end the flow with a [HybridFlowException].
     */
    fun askStreaming(query: String): Flow<Event> = callbackFlow {
        val handle = engine.askStreaming(query, object : EventListener {
            override fun onEvent(event: Event) {
                trySendBlocking(event)
            }
        })
        launch {
            try {
                handle.answer()
                channel.close()
            } catch (failure: HybridFlowException) {
                channel.close(failure)
            }
        }
        awaitClose {
            handle.cancel()
            handle.close()
        }
    }.buffer(Channel.UNLIMITED)

    /** What the phone reports; every cloud request is checked against it from now on. */
    fun setDeviceState(state: DeviceState) = engine.setDeviceState(state)

    /** The app's policy for the cloud; a policy that contradicts the configuration is refused. */
    fun setPolicy(policy: AppPolicy) = engine.setPolicy(policy)

    /** Today's and this month's cloud spending against the limits. */
    suspend fun budgetStatus(): BudgetStatus = engine.budgetStatus()

    /** Forgets the day's and month's spending (and a "spending unknown" mark after a damaged store). */
    suspend fun resetBudgets() = engine.resetBudgets()

    /** What the learned router measured on this device; null for the fixed routings. */
    suspend fun routerStatistics(): RouterStatistics? = engine.routerStatistics()

    /**
     * Cancels running queries, waits until they stopped, and releases the model and the state
     * directory. Idempotent; later calls throw [HybridFlowException.Closed]. (The small native
     * object left is freed with this one by the garbage collector.)
     */
    suspend fun close() = engine.shutdown()

    override fun toString() = description

    /** Runs [block] with this client and closes it afterwards, even on failure or cancellation. */
    suspend fun <T> use(block: suspend (HybridFlowClient) -> T): T {
        try {
            return block(this)
        } finally {
            withContext(NonCancellable) { close() }
        }
    }
}
