# Host fake of the memory that outlives a reset, for tests/fakes/machine.py (machine.RTC, machine.mem32).
# MIT licence. tests/fakes is on MICROPYPATH only when testing; never shipped to a board.
# Memory that outlives a reset but not a power cycle: ESP32 RTC slow memory (RTC.memory()) and the
# RP2040/RP2350 watchdog scratch registers (mem32). With NVRAM set to a file path before first use it
# lives in that file, so a test ends the process (the reset) and the next process finds it; a missing
# file is a power-on (all zero). Writes go straight to the file and allocate nothing, as on a board.
NVRAM = None
_RTC_MAX = 2048
_WATCHDOGS = (0x40058000, 0x400D8000)  # RP2040, RP2350 WATCHDOG_BASE
_WD_SIZE = 0x30                        # CTRL, LOAD, REASON, SCRATCH0-7, TICK


class _NV:
    def __init__(self, path):
        self.rtc = bytearray(2 + _RTC_MAX)      # length (2 bytes, little-endian), then the data
        self.wd = [bytearray(_WD_SIZE) for _ in _WATCHDOGS]
        self.f = None
        if path is None:
            return
        try:
            self.f = open(path, "r+b")
            self.f.readinto(self.rtc)
            for b in self.wd:
                self.f.readinto(b)
        except OSError:
            self.f = open(path, "w+b")
            self.save()

    def save(self):
        f = self.f
        if f is not None:
            f.seek(0)
            f.write(self.rtc)
            for b in self.wd:
                f.write(b)
            f.flush()


_nv = None


def _mem():
    global _nv
    if _nv is None:
        import machine

        _nv = _NV(machine.NVRAM)  # a test sets machine.NVRAM; unset, it reads NVRAM below (None)
    return _nv


class RTC:
    # One clock per board, as machine.RTC() on a port: every instance reads what any of them set.
    _dt = (2000, 1, 1, 5, 0, 0, 0, 0)

    def __init__(self, id=0):
        pass

    def datetime(self, dt=None):
        if dt is None:
            return RTC._dt
        RTC._dt = tuple(dt)
        return None

    def memory(self, data=None):
        r = _mem().rtc
        if data is None:
            return bytes(r[2:2 + (r[0] | r[1] << 8)])
        n = len(data)
        if n > _RTC_MAX:
            raise ValueError("buffer too long")
        for i in range(n):
            r[2 + i] = data[i]
        r[0] = n & 0xFF
        r[1] = n >> 8
        _mem().save()
        return None


class _Mem32:
    """machine.mem32 over the watchdog register blocks only; any other address is a bus fault here."""

    def _at(self, addr):
        # -> block index << 8 | offset (an int, not a tuple: the marker's writes must not allocate)
        if addr & 3:
            raise ValueError("unaligned address")
        for i in range(len(_WATCHDOGS)):
            off = addr - _WATCHDOGS[i]
            if 0 <= off < _WD_SIZE:
                return i << 8 | off
        raise ValueError("fake mem32: no register at 0x%x" % addr)

    def __getitem__(self, addr):
        at = self._at(addr)
        b = _mem().wd[at >> 8]
        o = at & 0xFF
        return b[o] | b[o + 1] << 8 | b[o + 2] << 16 | b[o + 3] << 24

    def __setitem__(self, addr, v):
        at = self._at(addr)
        b = _mem().wd[at >> 8]
        o = at & 0xFF
        b[o] = v & 0xFF
        b[o + 1] = (v >> 8) & 0xFF
        b[o + 2] = (v >> 16) & 0xFF
        b[o + 3] = (v >> 24) & 0xFF
        _mem().save()


mem32 = _Mem32()


def unique_id():
    return b"\xde\xad\xbe\xef\x00\x01"


def freq(hz=None):
    return 240000000 if hz is None else None


def idle():
    pass
