# Frozen firmware for ESP32 boards: the port's own modules, the agent library, the board module and
# any example tasks. MIT licence. Built by `make firmware BOARD=esp32 MICROPY_DIR=...` (FROZEN_MANIFEST).
include("$(PORT_DIR)/boards/manifest.py")
require("ntptime")  # firmware/main.py sets the clock with it (already in the port's networking bundle)
include("../../lib/manifest.py")
module("board.py", opt=3)

# Example tasks under their plain module names ("hello", not "tasks.hello"): the task loader
# imports the CommandInfo value as given. The manifest runs with its own directory as cwd.
import os  # noqa: E402

if os.path.isdir("../../tasks"):
    for _f in sorted(os.listdir("../../tasks")):
        if _f.endswith(".py"):
            module(_f, base_path="../../tasks", opt=3)
