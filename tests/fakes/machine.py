# Host fake of `machine` for tests in the unix port: pins, ADC, touch pads, WDT and timers that record use.
# MIT licence. tests/fakes is on MICROPYPATH only when testing; never shipped to a board.
# Levels are set per test through the class tables (ADC.levels, TouchPad.levels), so readings are exact.

_NAMED = {"LED": 25}   # like rp2's "LED" alias
_MAX_PIN = 48


def _pin_id(p):
    if isinstance(p, Pin):
        return p.id
    if isinstance(p, str):
        if p not in _NAMED:
            raise ValueError("unknown named pin %r" % p)
        return _NAMED[p]
    if not isinstance(p, int) or not 0 <= p <= _MAX_PIN:
        raise ValueError("invalid pin %r" % (p,))
    return p


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_FALLING = 2
    IRQ_RISING = 1
    made = {}  # pin id -> the last Pin built for it

    def __init__(self, id, mode=-1, pull=-1, value=None):
        self.id = _pin_id(id)
        self.mode = mode
        self.pull = pull
        self._v = 0 if value is None else (1 if value else 0)
        Pin.made[self.id] = self

    def init(self, mode=-1, pull=-1, value=None):
        if mode != -1:
            self.mode = mode
        if pull != -1:
            self.pull = pull
        if value is not None:
            self._v = 1 if value else 0

    def value(self, v=None):
        if v is None:
            return self._v
        self._v = 1 if v else 0
        return None

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        self._v = 1

    def off(self):
        self._v = 0

    def __repr__(self):
        return "Pin(%d)" % self.id


class ADC:
    ATTN_0DB = 0
    ATTN_2_5DB = 1
    ATTN_6DB = 2
    ATTN_11DB = 3
    levels = {}    # channel or pin id -> read_u16() value
    DEFAULT = 0x8000
    made = []

    def __init__(self, id, atten=None, sample_ns=None):
        # An int is a channel number (rp2: 0-4, 4 = temperature); a Pin is that pin's channel.
        self.key = id.id if isinstance(id, Pin) else id
        if not isinstance(self.key, int):
            raise ValueError("invalid ADC id")
        self.atten = atten
        ADC.made.append(self)

    def init(self, atten=None, sample_ns=None):
        if atten is not None:
            self.atten = atten

    def read_u16(self):
        return ADC.levels.get(self.key, ADC.DEFAULT)

    def read_uv(self):
        return self.read_u16() * 3300000 // 65535


class TouchPad:
    levels = {}
    DEFAULT = 600

    def __init__(self, pin):
        self.id = _pin_id(pin)

    def config(self, value):
        self.threshold = value

    def read(self):
        return TouchPad.levels.get(self.id, TouchPad.DEFAULT)


class WDT:
    """Records feeds and the longest gap between two of them (from arming on), on WDT.clock (ms), which
    a test may replace with its simulated clock. starved(): a real one would have reset the board."""
    made = []
    clock = None  # None: time.ticks_ms

    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout
        self.feeds = 0
        self.last = self._now()
        self.max_gap = 0
        WDT.made.append(self)

    @staticmethod
    def _now():
        if WDT.clock is not None:
            return WDT.clock()
        import time

        return time.ticks_ms()

    def feed(self):
        now = self._now()
        self.max_gap = max(self.max_gap, now - self.last)
        self.last = now
        self.feeds += 1

    def starved(self, now=None):
        gap = (self._now() if now is None else now) - self.last
        return max(self.max_gap, gap) > self.timeout


class Timer:
    PERIODIC = 1
    ONE_SHOT = 0
    made = []

    def __init__(self, id=-1, mode=1, period=-1, callback=None):
        self.id = id
        self.mode, self.period, self.callback = mode, period, callback
        Timer.made.append(self)

    def init(self, mode=1, period=-1, callback=None):
        self.mode, self.period, self.callback = mode, period, callback

    def deinit(self):
        self.callback = None


resets = []


def reset():
    resets.append(1)
    raise SystemExit("machine.reset() (fake)")


# reset_cause() values as the esp32/rp2 ports number them. The fake has no reset_cause() of its own: the
# unix board's marker is a file only while `machine` lacks it (taskinit.marker); esp32/rp2 tests add one.
PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5



def __getattr__(name):
    # RTC, mem32 and NVRAM live in machine_nv.py, loaded on first use: tests that never touch them
    # compile less source (some run near a board's heap size).
    import machine_nv

    return getattr(machine_nv, name)
