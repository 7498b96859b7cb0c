# Runs in MicroPython (a device model; argv: module names). How many more names (qstrs) a loaded board can
# intern before its next qstr pool, and what that pool costs: MicroPython keeps interned names in pools that
# double in size, each one heap block. Every agent module imported once first (what a long-lived board has
# interned: tasks and views come and go, their names stay). MIT licence. tools/bench/bench_devmodel.py runs it.
import gc
import micropython
import sys

for m in sys.argv[1:]:
    try:
        __import__(m)
    except Exception:  # noqa: BLE001  a module for hardware this port lacks (espnow): its names are not counted
        pass


micropython.qstr_info()  # "qstr pool: n_pool=.., n_qstr=.., n_str_data_bytes=.., n_total_bytes=..": what they hold


class _O:
    pass


o = _O()
gc.collect()
last = gc.mem_alloc()
for i in range(4000):
    n = "zq%d" % i  # a name no module has: interning it takes a pool slot
    setattr(o, n, 0)
    delattr(o, n)
    gc.collect()
    u = gc.mem_alloc()
    if u - last > 512:
        print("QSTR_HEADROOM %d %d" % (i, u - last))
        break
    last = u
else:
    print("QSTR_HEADROOM 4000 0")
