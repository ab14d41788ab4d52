// The idiomatic Kotlin face of HybridFlow, beside the uniffi-generated bindings of the same
// package (records, enums, `HybridFlow`, `HybridFlowException`). Shared by the JVM build (tests,
// jvm-chat) and the Android library.
package dev.hybridflow

import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.channels.awaitClose
import kotlinx.coroutines.channels.trySendBlocking
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.buffer
import kotlinx.coroutines.flow.callbackFlow
import kotlinx.coroutines.launch

/**
 * A HybridFlow engine: an on-device model, a cloud endpoint when it pays off, budgets that
 * persist. Open one per app (queries run concurrently on it) and close it with [close] or `use {}`.
 */
class HybridFlowClient private constructor(private val engine: HybridFlow) : AutoCloseable {
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
            return HybridFlowClient(HybridFlow.open(config, listener))
        }

        /** The SDK's log level, and optionally the app's own logger (besides logcat/stderr). */
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
    fun askFlow(query: String): Flow<Event> = callbackFlow {
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

    /** What the phone reports; routing decisions use it from the next step on. */
    fun updateDeviceState(state: DeviceState) = engine.updateDeviceState(state)

    fun setPolicy(policy: AppPolicy) = engine.setPolicy(policy)

    fun budgetStatus(): BudgetStatus = engine.budgetStatus()

    fun resetBudgets() = engine.resetBudgets()

    /** What the learned router measured on this device; null for the fixed routings. */
    fun routerStatistics(): RouterStatistics? = engine.routerStatistics()

    /** Cancels running queries and frees the model. */
    override fun close() {
        engine.shutdown()
        engine.close()
    }
}
