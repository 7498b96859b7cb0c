# Per node: the held queue (master -> node) and the status-update relay (node -> master), both journalled
# (docs/GATEWAY.md §3, §5). MIT licence. Never lost: a held message and an update are on disk before the
# caller returns. Never duplicated: updates by uuid (in flight, or acknowledged recently).
import time

from micropython import const

_RECENT = const(64)  # acknowledged uuids remembered per node: a late retry of the node is not sent again
_COMPACT = const(200)  # journal lines before it is rewritten with only what is live


class Relay:
    """hub: the LinkHub; peer: the node's hub.Peer (may be replaced: set .peer); store: gwstore.NodeStore;
    send(body) -> bool queues one StatusUpdateMessage body for the master (VAgent fixes ids in it)."""

    def __init__(self, hub, peer, store, send, retry_min_ms, retry_max_ms):
        self.hub = hub
        self.peer = peer
        self.store = store
        self.send = send
        self.retry_min = retry_min_ms
        self.retry_max = retry_max_ms
        self.streams = {}  # (fid, tid) -> [[uuid, body, due ticks or None, backoff], ...] oldest first
        self.acked = []  # recent acknowledged uuids, oldest first
        self.gen = []  # uuids of updates the gateway made itself (their acks are not for the node)
        self.sent = self.dups = self.acks = 0

    # --- master -> node ---------------------------------------------------------------------------

    def hold(self, kind, body):
        """Journal, then hand to the hub (it goes when the node listens)."""
        body = bytes(body)
        self.store.held(kind, body)
        self.hub.send(self.peer, kind, body)

    def outstanding(self):
        """Held messages not yet acknowledged by the node's Link."""
        p = self.peer
        return len(p.held) + (len(p.link.q) if p.link is not None else 0)

    def note_delivered(self):
        """Journal how many held messages reached the node since the last call (by the Link's acks)."""
        st = self.store
        n = st.given - st.done - self.outstanding()
        if n > 0:
            st.delivered(n)

    def unhold(self, test):
        """Remove held messages not yet given to the Link for which test(kind, body) is true; -> removed."""
        p = self.peer
        out = [m for m in p.held if test(m[0], m[1])]
        if out:
            p.held[:] = [m for m in p.held if not test(m[0], m[1])]
            self.compact(force=True)
        return out

    # --- node -> master ---------------------------------------------------------------------------

    def known(self, uuid):
        if uuid in self.acked:
            return True
        for s in self.streams.values():
            for u in s:
                if u[0] == uuid:
                    return True
        return False

    def update(self, fid, tid, uuid, body, state, journal=True):
        """A status update from the node (its task state): False for a duplicate (dropped). Journalled
        before it returns."""
        if self.known(uuid):
            self.dups += 1
            return False
        if journal:
            self.store.update(uuid, body)
        s = self.streams.get((fid, tid))
        if s is None:
            s = self.streams[(fid, tid)] = []
        s.append([uuid, bytes(body), None, self.retry_min, state])
        if len(s) == 1:
            s[0][2] = time.ticks_ms()
        return True

    def ack(self, fid, tid, uuid):
        """The master's acknowledgement: the acknowledged update's task state if it was the head of its
        stream (the next one goes), else None."""
        s = self.streams.get((fid, tid))
        if not s or s[0][0] != uuid:
            return None
        state = s.pop(0)[4]
        if s:
            s[0][2] = time.ticks_ms()
        else:
            del self.streams[(fid, tid)]
        self.acked.append(uuid)
        if len(self.acked) > _RECENT:
            self.acked.pop(0)
        self.store.acked(uuid)
        self.acks += 1
        return state

    def unacked(self, fid, tid):
        """(state, uuid) of the oldest unacknowledged update of the task, or None."""
        s = self.streams.get((fid, tid))
        return (s[0][4], s[0][0]) if s else None

    def pending(self):
        n = 0
        for s in self.streams.values():
            n += len(s)
        return n

    def poll(self, can_send):
        """Send each stream's head when due (backoff doubling to retry_max until acknowledged)."""
        if not can_send:
            return
        now = time.ticks_ms()
        for s in self.streams.values():
            u = s[0]
            if u[2] is None or time.ticks_diff(now, u[2]) < 0:
                continue
            if self.send(u[1]):
                self.sent += 1
                u[2] = time.ticks_add(now, u[3])
                u[3] = min(u[3] * 2, self.retry_max)
            else:
                u[2] = time.ticks_add(now, 100)

    def resume(self):
        """Registered again: every head goes now, backoff from the start."""
        now = time.ticks_ms()
        for s in self.streams.values():
            s[0][2] = now
            s[0][3] = self.retry_min

    # --- the journal --------------------------------------------------------------------------------

    def compact(self, force=False):
        st = self.store
        if not force and st.records < _COMPACT:
            return
        p = self.peer
        held = [(m[0], m[1]) for m in (p.link.q if p.link is not None else ())] + [(m[0], m[1]) for m in p.held]
        ups = []
        for s in self.streams.values():
            for u in s:
                ups.append((u[0], u[1]))
        st.rewrite(held, ups, self.acked)
