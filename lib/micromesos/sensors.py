# Generic sensor drivers: each takes its ADC, pin, touch pad or reader function in the constructor.
# MIT licence. No pin numbers or chip checks here: only boards/<board>/board.py builds these.
from micropython import const

_U16_MAX = const(65535)


class ADCVolts:
    """Volts on an ADC channel (`adc` a machine.ADC, already configured by the board).

    calibrated=True reads `read_uv()` (the ESP32 port applies the eFuse calibration there);
    otherwise `read_u16()` scaled by `vref`.
    """

    def __init__(self, adc, vref=3.3, calibrated=False):
        if not vref > 0:
            raise ValueError("vref must be > 0")
        self.adc = adc
        self.vref = vref
        self.calibrated = calibrated

    def read(self):
        if self.calibrated:
            return self.adc.read_uv() / 1000000
        return self.adc.read_u16() * self.vref / _U16_MAX


class ChipTemperature:
    """Die temperature in deg C from a linear on-chip sensor read through an ADC channel.

    t = t0 + (v - v0) / slope; the defaults are the RP2040's (datasheet §4.9.5:
    27 - (v - 0.706) / 0.001721, with v the ADC 4 voltage against a 3.3 V reference).
    """

    def __init__(self, adc, vref=3.3, t0=27.0, v0=0.706, slope=-0.001721):
        if not vref > 0:
            raise ValueError("vref must be > 0")
        if slope == 0:
            raise ValueError("slope must not be 0")
        self.adc = adc
        self.vref = vref
        self.t0 = t0
        self.v0 = v0
        self.slope = slope

    def read(self):
        v = self.adc.read_u16() * self.vref / _U16_MAX
        return self.t0 + (v - self.v0) / self.slope


class Reading:
    """A number from a reader function, scaled: read() = fn() * scale + offset.

    For values a port exposes as a function, e.g. esp32.mcu_temperature() (deg C) or the classic
    ESP32's esp32.raw_temperature() (deg F: scale=5/9, offset=-160/9).
    """

    def __init__(self, fn, scale=1, offset=0):
        if not callable(fn):
            raise TypeError("fn must be callable")
        self.fn = fn
        self.scale = scale
        self.offset = offset

    def read(self):
        v = self.fn()
        if self.scale != 1 or self.offset != 0:
            return v * self.scale + self.offset
        return v  # ints stay ints: a small int costs no heap


class Touch:
    """Raw capacitance count of a touch pad (machine.TouchPad); on ESP32 it drops when touched."""

    def __init__(self, pad):
        self.pad = pad

    def read(self):
        return self.pad.read()

