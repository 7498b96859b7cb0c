# The gateway's libprocess endpoint: one listener and one ordered connection per master address for every
# virtual agent (docs/GATEWAY.md §2.1). MIT licence. No change to the agent's transport: this subclass looks
# the receiver id up in a table and sends as another UPID with Libprocess.mid(), which send() already takes.
from micromesos import upid
from micromesos.errors import ProtocolError
from micromesos.libprocess import Libprocess
from micromesos.listener import Listener


class Processes(Libprocess):
    """Libprocess answering many process ids: add(id, handler) -> the sender head (mid) for that id.
    A message for an id not in the table gets 404, as libprocess answers for a process that is not there
    (the endpoint's own id, "gateway", takes messages and drops them: no handler)."""

    def __init__(self, ip, port, advertise_ip=None, advertise_port=None, cfg=None):
        Libprocess.__init__(self, "gateway", ip, port, advertise_ip, advertise_port, cfg)
        self.procs = {}  # b"slave(7)" -> handler(msg)
        self.host = self.upid.partition("@")[2]  # "ip:port" every virtual agent's UPID ends with

    def add(self, pid, handler):
        """Serve process id `pid` (str, e.g. "slave(7)"); -> (its UPID, its sender head for send(mid=))."""
        self.procs[pid.encode()] = handler
        u = pid + "@" + self.host
        return u, self.mid(u)

    def _message(self, c, p, w, s0, s1):
        # The receiver id is looked up (one small bytes per message: the gateway runs on a host); the
        # listener then checks and answers it as for the agent's own id.
        buf = p.buf
        t0 = p.target0 + 1
        sl = buf.find(b"/", t0, p.path1)
        h = self.procs.get(bytes(buf[t0:sl])) if sl > t0 else None
        if h is None:
            Listener._message(self, c, p, w, s0, s1)  # 404 (or 500 for a bad id): "gateway" gets nothing
            return
        self._id = bytes(buf[t0:sl])
        self.handler = h
        try:
            Listener._message(self, c, p, w, s0, s1)
        finally:
            self._id = b"gateway"
            self.handler = None

    def reply_as(self, msg, name, mid, body=b""):
        """reply() from the process whose sender head is mid (the pong of slave(N), §0.1)."""
        try:
            at = upid.check(msg.buf, msg.s0, msg.s1)
        except ProtocolError:
            return False
        return self._queue(msg.buf, msg.s0, at, msg.s1, name, body, mid)
