# Runs first at every boot, before main.py: kept tiny so a mistake here cannot lock the board out.
# MIT licence. No network and no agent here: mpremote's soft resets run this file too.
import gc

import micropython

# Room for a traceback raised inside an IRQ or timer callback (the watchdog feeder after Ctrl-C). The
# unix port (the virtual board) has no IRQs and no such call.
if hasattr(micropython, "alloc_emergency_exception_buf"):
    micropython.alloc_emergency_exception_buf(100)
gc.collect()
