# Raspberry Pi Pico / Pico W (RP2040; Pico 2 W with RP2350): die temperature, ADC pins, LED, Wi-Fi.
# MIT licence. The only place that knows these pin numbers; drivers live in micromesos.sensors.
import sys

import machine
from micropython import const

from micromesos import sensors
from micromesos.inventory import Inventory

NAME = "rp2"
# The firmware's board/chip string, e.g. "Raspberry Pi Pico W with RP2040" (tests replace it).
_MACHINE = getattr(sys.implementation, "_machine", "")
_TEMP_ADC = const(4)        # ADC input 4 is the on-chip temperature sensor (RP2040 datasheet §4.9.5)
_WDT_MAX_MS = const(8388)   # RP2040 watchdog counter limit (rp2 port clamps higher values with an error)
_ADC_PINS = (26, 27)        # ADC0, ADC1. ADC3 (GPIO29) is VSYS/3 and shares the CYW43 clock on a Pico W
# GPIO0-22 are on the header; 0/1 stay free for UART0 debugging; 26-27 are ADC inputs above.
# 23-25 and 29 drive the CYW43 radio on a Pico W (the LED hangs off the radio as "LED").
_GPIO = tuple(range(2, 23)) + (28,)

_ARCHS = ("none", "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp",
          "xtensa", "xtensawin", "rv32imc", "rv64imc")


def chip():
    """'rp2040' or 'rp2350' from the firmware's machine string ("Raspberry Pi Pico W with RP2040")."""
    return "rp2350" if _MACHINE.upper().endswith("RP2350") else "rp2040"


def mpy_arch(mpy=None):
    """Native arch name from sys.implementation._mpy (feature byte >> 2), e.g. "xtensawin"."""
    if mpy is None:
        mpy = getattr(sys.implementation, "_mpy", 0)
    a = (mpy >> 10) & 0x3F
    return _ARCHS[a] if a < len(_ARCHS) else "unknown"


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
    return Inventory(
        NAME, mpy_arch(), sensors=sens, actuators={"led": {"led0": led}}, gpio=_GPIO,
        pin=machine.Pin, attributes={"chip": chip(), "features": "+".join(found)}, fs="/")


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
