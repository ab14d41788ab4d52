// The phone's state as HybridFlow's router needs it, from the platform services:
// ConnectivityManager (network, metered, data saver), BatteryManager (level, charging) and
// PowerManager (power-save mode, thermal status). Emits a new DeviceState on every change.
package dev.hybridflow.sample

import android.content.BroadcastReceiver
import android.content.Context
import android.content.Intent
import android.content.IntentFilter
import android.net.ConnectivityManager
import android.net.Network as AndroidNetwork
import android.net.NetworkCapabilities
import android.os.BatteryManager
import android.os.PowerManager
import dev.hybridflow.DeviceState
import dev.hybridflow.Network
import dev.hybridflow.Thermal
import kotlinx.coroutines.channels.awaitClose
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.callbackFlow
import kotlinx.coroutines.flow.distinctUntilChanged

fun deviceStates(context: Context): Flow<DeviceState> = callbackFlow {
    val connectivity = context.getSystemService(ConnectivityManager::class.java)
    val power = context.getSystemService(PowerManager::class.java)

    fun current(): DeviceState {
        val capabilities = connectivity.getNetworkCapabilities(connectivity.activeNetwork)
        val network = when {
            capabilities == null || !capabilities.hasCapability(NetworkCapabilities.NET_CAPABILITY_INTERNET) -> Network.NONE
            capabilities.hasTransport(NetworkCapabilities.TRANSPORT_CELLULAR) -> Network.CELLULAR
            !capabilities.hasCapability(NetworkCapabilities.NET_CAPABILITY_NOT_METERED) -> Network.METERED
            else -> Network.WIFI
        }
        val battery = context.registerReceiver(null, IntentFilter(Intent.ACTION_BATTERY_CHANGED))
        val level = battery?.let {
            it.getIntExtra(BatteryManager.EXTRA_LEVEL, -1).toFloat() / it.getIntExtra(BatteryManager.EXTRA_SCALE, 100)
        } ?: 1f
        val plugged = (battery?.getIntExtra(BatteryManager.EXTRA_PLUGGED, 0) ?: 0) != 0
        val thermal = when (power.currentThermalStatus) {
            PowerManager.THERMAL_STATUS_NONE, PowerManager.THERMAL_STATUS_LIGHT -> Thermal.NOMINAL
            PowerManager.THERMAL_STATUS_MODERATE -> Thermal.FAIR
            PowerManager.THERMAL_STATUS_SEVERE -> Thermal.SERIOUS
            else -> Thermal.CRITICAL
        }
        return DeviceState(
            network = network,
            dataSaver = connectivity.restrictBackgroundStatus == ConnectivityManager.RESTRICT_BACKGROUND_STATUS_ENABLED,
            batteryLevel = level.coerceIn(0f, 1f),
            charging = plugged,
            lowPowerMode = power.isPowerSaveMode,
            thermal = thermal,
        )
    }

    val networkCallback = object : ConnectivityManager.NetworkCallback() {
        override fun onCapabilitiesChanged(network: AndroidNetwork, capabilities: NetworkCapabilities) { trySend(current()) }
        override fun onLost(network: AndroidNetwork) { trySend(current()) }
    }
    val receiver = object : BroadcastReceiver() {
        override fun onReceive(context: Context, intent: Intent) { trySend(current()) }
    }
    val thermalListener = PowerManager.OnThermalStatusChangedListener { trySend(current()) }

    connectivity.registerDefaultNetworkCallback(networkCallback)
    context.registerReceiver(receiver, IntentFilter().apply {
        addAction(Intent.ACTION_BATTERY_CHANGED)
        addAction(PowerManager.ACTION_POWER_SAVE_MODE_CHANGED)
        addAction(ConnectivityManager.ACTION_RESTRICT_BACKGROUND_CHANGED)
    })
    power.addThermalStatusListener(thermalListener)
    trySend(current())
    awaitClose {
        connectivity.unregisterNetworkCallback(networkCallback)
        context.unregisterReceiver(receiver)
        power.removeThermalStatusListener(thermalListener)
    }
}.distinctUntilChanged()
