# A node's entry point (issue 11 part 3): micromesos.nodeboot brings it up; a node reaches the master only
# through a gateway (docs/GATEWAY.md, docs/LINK.md). MIT licence. Device: copy it as /main.py with a node config
# as /config.json. Host (the unix port, from the repository root; "gateway" must be a gateway's link socket):
#   MICROPYPATH=.frozen:lib:boards/unix .venv/bin/micropython firmware/node_main.py node.json
import sys

from micromesos import nodeboot

if __name__ == "__main__":
    # On a board (no sys.argv) a crash reboots it after a pause; on the unix port the exit code reports it.
    _rc = nodeboot.boot(sys.argv[1] if len(sys.argv) > 1 else "config.json", not sys.argv)
    if sys.argv:
        sys.exit(_rc)
