// What the phone reports to HybridFlow's router: NWPathMonitor (network, expensive, constrained =
// Low Data Mode), UIDevice (battery level and state), ProcessInfo (thermal state, Low Power Mode).
import Foundation
import HybridFlow
import Network
import UIKit

@MainActor
final class DeviceMonitor: DeviceStateSource {
    private let path = NWPathMonitor()
    private var observers: [NSObjectProtocol] = []
    private var onChange: (DeviceState) -> Void = { _ in }
    private var latestPath: NWPath?

    func start(_ onChange: @escaping (DeviceState) -> Void) {
        self.onChange = onChange
        UIDevice.current.isBatteryMonitoringEnabled = true
        path.pathUpdateHandler = { [weak self] path in
            Task { @MainActor in
                self?.latestPath = path
                self?.publish()
            }
        }
        path.start(queue: .global(qos: .utility))
        let center = NotificationCenter.default
        for name in [UIDevice.batteryLevelDidChangeNotification, UIDevice.batteryStateDidChangeNotification,
                     ProcessInfo.thermalStateDidChangeNotification, Notification.Name.NSProcessInfoPowerStateDidChange] {
            observers.append(center.addObserver(forName: name, object: nil, queue: .main) { [weak self] _ in
                Task { @MainActor in self?.publish() }
            })
        }
        publish()
    }

    private func publish() {
        let network: Network
        switch latestPath {
        case .some(let p) where p.status != .satisfied: network = .none
        case .some(let p) where p.usesInterfaceType(.cellular): network = .cellular
        case .some(let p) where p.isExpensive: network = .metered
        default: network = .wifi
        }
        let battery = UIDevice.current.batteryLevel // -1 when unknown (simulator)
        let state = UIDevice.current.batteryState
        let thermal: Thermal
        switch ProcessInfo.processInfo.thermalState {
        case .nominal: thermal = .nominal
        case .fair: thermal = .fair
        case .serious: thermal = .serious
        case .critical: thermal = .critical
        @unknown default: thermal = .serious
        }
        onChange(DeviceState(
            network: network,
            dataSaver: latestPath?.isConstrained ?? false,
            batteryLevel: battery < 0 ? 1 : battery,
            charging: state == .charging || state == .full || battery < 0,
            lowPowerMode: ProcessInfo.processInfo.isLowPowerModeEnabled,
            thermal: thermal
        ))
    }
}
