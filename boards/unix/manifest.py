# Frozen build of the unix port with the agent (a self-contained virtual-board binary).
# MIT licence. `make -C <micropython>/ports/unix FROZEN_MANIFEST=$PWD/boards/unix/manifest.py`.
include("$(PORT_DIR)/variants/manifest.py")
include("../../lib/manifest.py")
module("board.py", opt=3)

# The manifest runs with its own directory as cwd; tasks/ arrives with the tasks issue.
import os  # noqa: E402

if os.path.isdir("../../tasks"):
    package("tasks", base_path="../..", opt=3)
