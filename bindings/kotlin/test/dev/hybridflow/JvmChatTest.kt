// The JVM sample chat (sample-apps/jvm-chat) driven through its stdin like a user would: ask,
// see the route and answer; `/offline`, ask again: everything runs on the edge.
package dev.hybridflow

import java.io.File
import java.nio.file.Files
import java.util.concurrent.TimeUnit
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertTrue
import org.junit.Test

class JvmChatTest {
    private val question = "A shop sells pens at \$2 each and notebooks at \$5 each. Tom buys 3 pens and 2 notebooks. How much does he pay in total?"

    @Test
    fun askThenOfflineRunsEverythingOnTheEdge() {
        val java = File(System.getProperty("java.home"), "bin/java").path
        val process = ProcessBuilder(
            java,
            "-Djna.library.path=${System.getProperty("jna.library.path")}",
            "-cp", System.getProperty("java.class.path"),
            "dev.hybridflow.chat.MainKt",
        ).apply {
            environment()["HYBRIDFLOW_STATE_DIR"] = Files.createTempDirectory("jvm-chat").toString()
            redirectError(ProcessBuilder.Redirect.DISCARD)
        }.start()
        process.outputStream.bufferedWriter().use { it.write("$question\n/offline\n$question\n") }
        val output = process.inputStream.bufferedReader().readText()
        assertTrue("the chat exits at the end of its input", process.waitFor(10, TimeUnit.MINUTES))
        assertEquals(output, 0, process.exitValue())

        val parts = output.split("device: ")
        assertEquals("one /offline acknowledgement:\n$output", 2, parts.size)
        val (online, offline) = parts
        // By default a plan is weighed and declined: one step, routed as a whole query, its gain shown.
        assertTrue(online, online.contains("plan: answer directly (a plan would not pay: a plan gains"))
        assertFalse(online, online.contains("planning on"))
        assertTrue(online, online.contains("on the cloud: gain"))
        assertEquals("one answer with its totals:\n$online", 1, Regex("-- edge:").findAll(online).count())

        assertTrue(offline, offline.contains("network=NONE"))
        assertFalse("nothing on the cloud while offline:\n$offline", offline.contains("on the cloud"))
        assertTrue(offline, offline.contains("on the edge"))
        assertTrue("routes say why:\n$offline", offline.contains("gate Offline"))
        assertTrue(offline, offline.contains("cloud: 0 calls"))
    }
}
