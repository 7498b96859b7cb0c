# Gateway heap per node (issue 11 "gateway heap per node"), measured in the MicroPython unix port:
#   .venv/bin/micropython -X heapsize=64m tools/gateway_heap.py [N [LINK_MAX_MESSAGE [CHECKPOINT_DIR [MTU WINDOW]]]]
# with MICROPYPATH=.frozen:lib. MIT licence. The ESP32 bridge's settings on its 32-bit device model
# (docs/GATEWAY.md §10): MICROPYPATH=.frozen build/devmodel/bridge/micropython -X heapsize=256k
# tools/gateway_heap.py 8 2048 "" 250 2 N nodes attach through real HELLO frames (each gets its Link,
# its session and its virtual agent) and announce their SlaveInfo (NODE_INFO); then the heap in use after a
# collection, per node. Nothing is sent to a master (none is needed to hold a node's state).
import gc
import os
import sys

gc.collect()
_m0 = gc.mem_alloc()
from micromesos import codec, linkhello  # noqa: E402

from mgateway.gateway import Gateway  # noqa: E402

gc.collect()
print("modules: %d B (the gateway's code and what it imports; frozen: only their objects)" % (gc.mem_alloc() - _m0))

N = int(sys.argv[1]) if len(sys.argv) > 1 else 100
MAXMSG = int(sys.argv[2]) if len(sys.argv) > 2 else 8192  # the gateway's default link_max_message
ROOT = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] else "/tmp/gateway-heap-" + os.urandom(4).hex()  # empty: nothing restored
MTU = int(sys.argv[4]) if len(sys.argv) > 4 else 512  # the gateway's default link_mtu, link_window
WINDOW = int(sys.argv[5]) if len(sys.argv) > 5 else 4
INFO = codec.encode(20, {"hostname": "node", "resources": [
    {"name": "cpus", "type": 0, "scalar": {"value": 1.0}}, {"name": "mem", "type": 0, "scalar": {"value": 64.0}}]})

sent = [0]


def counted(addr):
    def out(frame):
        sent[0] += 1
    return out


gw = Gateway({"master": "127.0.0.1:5050", "port": 5151, "link_port": 0, "checkpoint_dir": ROOT, "log_level": "warn",
              "max_nodes": N, "link_max_message": MAXMSG, "link_mtu": MTU, "link_window": WINDOW})
gw.hub.sender = counted  # frames go nowhere: this measures state, not the loopback
buf = bytearray(64)
gc.collect()
before = gc.mem_alloc()
for i in range(N):
    n = linkhello.hello(buf, 1000 + i, 60000, 5000, 250, 2, "node-%d" % i)
    gw.hub.frame(("127.0.0.1", 20000 + i), buf, n)
    p = gw.hub.peers["node-%d" % i]
    gw.agents[p.name].on_node(0x80, INFO, 0, len(INFO))
gc.collect()
after = gc.mem_alloc()
print("nodes %d: heap %d B before, %d B after, %d B per node (Link window %d x mtu %d, max_message %d)"
      % (N, before, after, (after - before) // N, gw.hub.window, gw.hub.mtu, gw.hub.max_message))
