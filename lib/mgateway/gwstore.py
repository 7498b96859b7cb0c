# The gateway's checkpoint per node (docs/GATEWAY.md §5): <dir>/<node>/node.json (atomic replace) and
# <dir>/<node>/journal.json (JSON lines, appended). MIT licence. Files are micromesos.store's.
import json
import os

from micromesos import log
from micromesos.store import Store

_W = "gwstore"
# Journal records, one JSON list per line:
#   ["h", kind, body hex]   a message held for the node (master -> node), in order
#   ["d", n]                the first n held records since the last rewrite reached the node (link-acked)
#   ["u", uuid hex, body hex]  a status update from the node, stored before the link acked it
#   ["a", uuid hex]         the master acknowledged that update (its ack is an "h" record before this one)


class NodeStore:
    """One node's directory. save(state) replaces node.json; held()/update()/acked()/delivered() append to the
    journal; load() -> (state or None, held [(kind, body)] not yet delivered, unacked [(uuid, body)], acked
    uuids); rewrite(held, unacked, acked) starts the journal again with only those."""

    def __init__(self, root, name):
        self.st = Store(root + "/" + name)
        self.records = 0  # lines in the journal
        self.given = 0  # held records since the last rewrite
        self.done = 0  # of those, delivered

    def save(self, state):
        self.st.save("node", state)

    def _put(self, rec):
        self.st.append("journal", [rec])  # one JSON line (Store.append)
        self.records += 1

    def held(self, kind, body):
        self._put(["h", kind, bytes(body).hex()])
        self.given += 1

    def delivered(self, n):
        """n more held records reached the node (in order)."""
        if n > 0:
            self.done += n
            self._put(["d", self.done])

    def update(self, uuid, body):
        self._put(["u", uuid.hex(), bytes(body).hex()])

    def acked(self, uuid):
        self._put(["a", uuid.hex()])

    def load(self):
        state = self.st.load("node")
        held = []
        done = 0
        ups = {}  # uuid -> body, in insertion order (dicts keep it on both ports)
        order = []
        acked = []
        f = self.st.reader("journal")
        n = 0
        if f is not None:
            with f:
                for line in f:
                    try:
                        r = json.loads(line)
                        t = r[0]
                        if t == "h":
                            held.append((r[1], bytes.fromhex(r[2])))
                        elif t == "d":
                            done = r[1]
                        elif t == "u":
                            u = bytes.fromhex(r[1])
                            if u not in ups and u not in acked:
                                ups[u] = bytes.fromhex(r[2])
                                order.append(u)
                        elif t == "a":
                            u = bytes.fromhex(r[1])
                            ups.pop(u, None)
                            acked.append(u)
                        n += 1
                    except (ValueError, IndexError, TypeError, KeyError):
                        log.warn(_W, "%s: a torn or bad journal line skipped", self.st.dir)
        unacked = [(u, ups[u]) for u in order if u in ups]
        return state, held[done:], unacked, acked

    def rewrite(self, held, unacked, acked):
        """The journal again with only what is live: one file replace."""
        lines = [["a", u.hex()] for u in acked]  # the records; the store writes each as a JSON line
        for u, b in unacked:
            lines.append(["u", u.hex(), bytes(b).hex()])
        for k, b in held:
            lines.append(["h", k, bytes(b).hex()])
        self.st.replace("journal", lines)
        self.records = len(lines)
        self.given = len(held)
        self.done = 0


def nodes(root):
    """Names of the nodes checkpointed under root."""
    try:
        return sorted(n for n in os.listdir(root) if not n.startswith("."))
    except OSError:
        return []
