# Frozen firmware for the Raspberry Pi Pico W: the port's own modules, the agent library, the board
# module and any example tasks. MIT licence. Built by `make firmware BOARD=rp2 MICROPY_DIR=...`.
include("$(PORT_DIR)/boards/manifest.py")
require("ntptime")  # firmware/main.py sets the clock with it; RPI_PICO_W's own manifest adds more
include("../../lib/manifest.py")
module("board.py", opt=3)

# Example tasks under their plain module names ("hello", not "tasks.hello"): the task loader
# imports the CommandInfo value as given. The manifest runs with its own directory as cwd.
import os  # noqa: E402

if os.path.isdir("../../tasks"):
    for _f in sorted(os.listdir("../../tasks")):
        if _f.endswith(".py"):
            module(_f, base_path="../../tasks", opt=3)
