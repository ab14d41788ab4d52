// The edge model on the phone: downloaded from a URL the user gives (resumed with an HTTP Range
// request after an interruption) or copied from a file the user picks.
package dev.hybridflow.sample

import android.content.Context
import android.net.Uri
import java.io.File
import java.io.FileOutputStream
import java.net.HttpURLConnection
import java.net.URL
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.ensureActive
import kotlinx.coroutines.withContext
import kotlin.coroutines.coroutineContext

class ModelFiles(private val context: Context) {
    val model: File get() = File(context.filesDir, "models/edge.gguf")
    private val partial: File get() = File(context.filesDir, "models/edge.gguf.part")

    fun isPresent() = model.isFile && model.length() > 0

    /** Downloads [url], resuming a previous partial download; [onProgress] gets (bytes, total or -1). */
    suspend fun download(url: String, onProgress: (Long, Long) -> Unit) = withContext(Dispatchers.IO) {
        partial.parentFile?.mkdirs()
        val already = if (partial.exists()) partial.length() else 0L
        val connection = (URL(url).openConnection() as HttpURLConnection).apply {
            if (already > 0) setRequestProperty("Range", "bytes=$already-")
        }
        val resumed = connection.responseCode == HttpURLConnection.HTTP_PARTIAL
        if (!resumed && connection.responseCode != HttpURLConnection.HTTP_OK) error("HTTP ${connection.responseCode}")
        val start = if (resumed) already else 0L
        val total = connection.contentLengthLong.let { if (it < 0) -1 else it + start }
        connection.inputStream.use { input ->
            FileOutputStream(partial, resumed).use { output ->
                val buffer = ByteArray(1 shl 16)
                var done = start
                while (true) {
                    coroutineContext.ensureActive() // cancelling keeps the partial file for a resume
                    val read = input.read(buffer)
                    if (read < 0) break
                    output.write(buffer, 0, read)
                    done += read
                    onProgress(done, total)
                }
            }
        }
        check(partial.renameTo(model)) { "cannot move the downloaded model into place" }
    }

    /** Copies a GGUF file the user picked (Storage Access Framework). */
    suspend fun import(uri: Uri) = withContext(Dispatchers.IO) {
        model.parentFile?.mkdirs()
        context.contentResolver.openInputStream(uri)!!.use { input -> model.outputStream().use { input.copyTo(it) } }
    }
}
