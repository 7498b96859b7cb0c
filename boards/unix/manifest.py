# Frozen build of the unix port with the agent: the `make firmware` model of the 32-bit device model
# (`make devmodel`, tools/devmodel.py). MIT licence. `make -C <micropython>/ports/unix
# FROZEN_MANIFEST=$PWD/boards/unix/manifest.py` replaces the variant's manifest, so this repeats
# what ports/unix/variants/standard/manifest.py adds to the port's own: asyncio, which the agent runs on.
include("$(PORT_DIR)/variants/manifest.py")
include("$(MPY_DIR)/extmod/asyncio")
include("../../lib/manifest.py")
module("board.py", opt=3)

# Example tasks under their plain module names ("hello", not "tasks.hello"): the task loader
# imports the CommandInfo value as given. The manifest runs with its own directory as cwd.
import os  # noqa: E402

if os.path.isdir("../../tasks"):
    for _f in sorted(os.listdir("../../tasks")):
        if _f.endswith(".py"):
            module(_f, base_path="../../tasks", opt=3)
