# Raspberry Pi Pico / Pico W (RP2040; Pico 2 W with RP2350): die temperature, ADC pins, LED, Wi-Fi.
# MIT licence. The only place that knows these pin numbers; drivers live in micromesos.sensors.
import sys

import machine
from micropython import const

from micromesos import sensors
from micromesos.inventory import Inventory, mpy_arch

NAME = "rp2"
# The firmware's board/chip string, e.g. "Raspberry Pi Pico W with RP2040" (tests replace it).
_MACHINE = getattr(sys.implementation, "_machine", "")
_TEMP_ADC = const(4)        # ADC input 4 is the on-chip temperature sensor (RP2040 datasheet §4.9.5)
_WDT_MAX_MS = const(8388)   # RP2040 watchdog counter limit (rp2 port clamps higher values with an error)
_ADC_PINS = (26, 27)        # ADC0, ADC1. ADC3 (GPIO29) is VSYS/3 and shares the CYW43 clock on a Pico W
# GPIO0-22 are on the header; 0/1 stay free for UART0 debugging; 26-27 are ADC inputs above.
# 23-25 and 29 drive the CYW43 radio on a Pico W (the LED hangs off the radio as "LED").
_GPIO = tuple(range(2, 23)) + (28,)

# Watchdog scratch registers survive the watchdog's reset, not a power cycle (RP2040 datasheet §4.7,
# RP2350 §12.9.5). SCRATCH4-7 belong to the bootrom and pico-sdk (watchdog_enable, watchdog_reboot);
# the marker takes SCRATCH2 (task slot) and SCRATCH3 (a tag saying SCRATCH2 is ours).
_WATCHDOG_RP2040 = 0x40058000
_WATCHDOG_RP2350 = 0x400D8000
_SCRATCH2 = const(0x14)
_SCRATCH3 = const(0x18)
_TAG = const(0x0A6E6D6B)  # a small int on 32-bit builds: reading it allocates nothing


def chip():
    """'rp2040' or 'rp2350' from the firmware's machine string ("Raspberry Pi Pico W with RP2040")."""
    return "rp2350" if _MACHINE.upper().endswith("RP2350") else "rp2040"


class ScratchMarker:
    """inventory.marker in two watchdog scratch registers (machine.mem32): no flash wear, and it outlives
    the WDT reset that ends a task holding the loop. machine.reset() is a watchdog reboot on this port
    (reset_cause() says WDT_RESET), so main.py clears the marker before resetting on purpose."""

    def __init__(self, base):
        self._mem = machine.mem32
        self._slot = base + _SCRATCH2  # kept: on 32-bit builds the address is a boxed int
        tag = base + _SCRATCH3
        if self._mem[tag] != _TAG:  # power-on (registers are 0) or another program's values
            self._mem[self._slot] = 0
            self._mem[tag] = _TAG

    def read(self):
        return self._mem[self._slot]

    def write(self, n):
        self._mem[self._slot] = n


def has_wifi():
    try:
        import network  # noqa: F401  (absent on a plain Pico)
    except ImportError:
        return False
    return hasattr(network, "WLAN")


def inventory(config):
    """The Inventory of this Pico (config is accepted for symmetry; pins are fixed here)."""
    found = ["adc", "led"]
    if has_wifi():
        found.insert(0, "wifi")
    volts = {}
    for i, n in enumerate(_ADC_PINS):
        volts["adc%d" % i] = sensors.ADCVolts(machine.ADC(machine.Pin(n)))
    sens = {"temperature": {"mcu0": sensors.ChipTemperature(machine.ADC(_TEMP_ADC))},
            "voltage": volts}
    # "LED" names the onboard LED on both boards: GPIO25 on a Pico, the CYW43's WL_GPIO0 on a Pico W.
    led = machine.Pin("LED", machine.Pin.OUT, value=0)
    name = chip()
    return Inventory(
        NAME, mpy_arch(), sensors=sens, actuators={"led": {"led0": led}}, gpio=_GPIO,
        pin=machine.Pin, attributes={"chip": name, "features": "+".join(found)}, fs="/",
        marker=ScratchMarker(_WATCHDOG_RP2350 if name == "rp2350" else _WATCHDOG_RP2040))


def wlan():
    """The station interface, or None on a Pico without radio."""
    if not has_wifi():
        return None
    import network

    return network.WLAN(network.WLAN.IF_STA)


def watchdog(timeout_ms):
    """A started machine.WDT; it cannot be stopped again on this port."""
    return machine.WDT(timeout=min(timeout_ms, _WDT_MAX_MS))


def feed_in_background(wdt, period_ms):
    """Keep an armed WDT fed from a virtual timer once the agent (and its feeder task) stopped."""
    t = machine.Timer(-1)  # rp2 timers are virtual: id -1 is the only one
    t.init(mode=machine.Timer.PERIODIC, period=period_ms, callback=lambda _t: wdt.feed())
    return t
