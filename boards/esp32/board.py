# ESP32-family boards (classic ESP32, S2, S3, C3): pins per chip, on-chip sensors, Wi-Fi, watchdog.
# MIT licence. The only place that knows these pin numbers; drivers live in micromesos.sensors.
import sys

import esp32
import machine
from micropython import const

from micromesos import sensors
from micromesos.inventory import Inventory, mpy_arch

NAME = "esp32"
# The firmware's board/chip string, e.g. "Generic ESP32S3 module with ESP32S3" (tests replace it).
_MACHINE = getattr(sys.implementation, "_machine", "")
_WDT_MAX_MS = const(60000)
_MARK = b"mmk1"  # RTC.memory() holds one buffer for all its users: ours starts with this tag

# Per chip: onboard LED pin (None: none or an RGB LED that needs a driver), touch-pad pins,
# ADC1 pins (ADC2 is unusable while Wi-Fi runs), and GPIOs free for tasks. Left out on purpose:
# flash/PSRAM pins, strapping pins, UART0 (the REPL) and USB pins.
_CHIPS = {
    # DevKitC / DevKit v1. 6-11 flash, 16-17 PSRAM on WROVER, 0/2/5/12/15 strapping, 34-39 input only.
    "esp32": (2, (4,), (34, 35), (13, 14, 18, 19, 21, 22, 23, 25, 26, 27, 32, 33)),
    # S2/S3 DevKitC: 0/3/45/46 strapping, 19/20 USB, 26-37 flash/PSRAM, 43/44 UART0; LED is RGB.
    "esp32s2": (None, (14,), (1, 2), (4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15, 16, 17, 18, 38, 39, 40, 41, 42)),
    "esp32s3": (None, (14,), (1, 2), (4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15, 16, 17, 18, 38, 39, 40, 41, 42)),
    # C3 DevKitM: 2/8/9 strapping, 11-17 flash, 18/19 USB, 20/21 UART0; no touch pads.
    "esp32c3": (None, (), (0, 1), (4, 5, 6, 7, 10)),
}


def chip():
    """'esp32', 'esp32s2', 'esp32s3', 'esp32c3', ... from the firmware's machine string."""
    m = _MACHINE.upper()  # e.g. "Generic ESP32S3 module with ESP32S3"
    for name in ("ESP32S2", "ESP32S3", "ESP32C3", "ESP32C6", "ESP32H2", "ESP32P4"):
        if m.endswith(name):
            return name.lower()
    return "esp32"


class RTCMarker:
    """inventory.marker in RTC slow memory (machine.RTC().memory()): it survives the WDT reset but not a
    power cycle, and rewriting it costs no flash. Tag + slot, little-endian; the agent owns RTC.memory()."""

    def __init__(self, rtc=None):
        self.rtc = rtc or machine.RTC()
        self._b = bytearray(_MARK + b"\0\0\0\0")  # written in place: write() runs twice per task step

    def read(self):
        m = self.rtc.memory()
        if len(m) != 8 or m[:4] != _MARK:
            return 0  # power-on, or someone else's data
        return m[4] | m[5] << 8 | m[6] << 16 | m[7] << 24

    def write(self, n):
        b = self._b
        b[4] = n & 0xFF
        b[5] = (n >> 8) & 0xFF
        b[6] = (n >> 16) & 0xFF
        b[7] = (n >> 24) & 0xFF
        self.rtc.memory(b)


def _mcu_temperature():
    # S2/S3/C3/C6 ports have esp32.mcu_temperature() (deg C, calibrated); the classic ESP32 only has
    # raw_temperature() (deg F, uncalibrated, reads ~53 C when the sensor is not powered).
    fn = getattr(esp32, "mcu_temperature", None)
    if fn is not None:
        return sensors.Reading(fn)
    fn = getattr(esp32, "raw_temperature", None)
    if fn is not None:
        return sensors.Reading(fn, scale=5 / 9, offset=-160 / 9)
    return None


def inventory(config):
    """The Inventory of this ESP32 board (config is accepted for symmetry; pins are fixed here)."""
    name = chip()
    led_pin, touch_pins, adc_pins, free = _CHIPS.get(name, (None, (), (), ()))
    found = ["wifi"]
    temps = {}
    t = _mcu_temperature()
    if t is not None:
        temps["mcu0"] = t
    sens = {}
    if temps:
        sens["temperature"] = temps
    touch = {}
    for i, n in enumerate(touch_pins):
        touch["touch%d" % i] = sensors.Touch(machine.TouchPad(machine.Pin(n)))
    if touch:
        sens["touch"] = touch
        found.append("touch")
    volts = {}
    for i, n in enumerate(adc_pins):
        # 11 dB attenuation: the full ~0-3.1 V range; read_uv() applies the eFuse calibration.
        adc = machine.ADC(machine.Pin(n), atten=machine.ADC.ATTN_11DB)
        volts["adc%d" % i] = sensors.ADCVolts(adc, calibrated=True)
    if volts:
        sens["voltage"] = volts
        found.append("adc")
    act = {}
    if led_pin is not None:
        act["led"] = {"led0": machine.Pin(led_pin, machine.Pin.OUT, value=0)}
        found.append("led")
    return Inventory(
        NAME, mpy_arch(), sensors=sens, actuators=act, gpio=free, pin=machine.Pin,
        attributes={"chip": name, "features": "+".join(found)}, fs="/", marker=RTCMarker())


def wlan():
    """The station interface (inactive until firmware connects it)."""
    import network

    return network.WLAN(network.WLAN.IF_STA)


def watchdog(timeout_ms):
    """A started machine.WDT; it cannot be stopped again on this port."""
    return machine.WDT(timeout=min(timeout_ms, _WDT_MAX_MS))


def feed_in_background(wdt, period_ms):
    """Keep an armed WDT fed from hardware timer 0 once the agent (and its feeder task) stopped."""
    t = machine.Timer(0)
    t.init(mode=machine.Timer.PERIODIC, period=period_ms, callback=lambda _t: wdt.feed())
    return t
