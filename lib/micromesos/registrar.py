# The agent's registration half: SlaveInfo (PROTOCOL.md §3.5), each try of the registration loop, the
# (re-)registration messages and the master's answers to them (§2.2-2.4). Recovery at boot and the master's
# other rare messages are recovery.py's (a registration loads none of that).
# MIT licence. agent.py imports this module for one call and drops it (Agent.cold), so none of it sits
# in RAM while the agent is registered and idle. Every function here takes the Agent first.
import random
import time

from micropython import const

from . import MESOS_VERSION, codec, log, names
from .wire import put_varint, varint_size
_REGISTER_SLAVE = const(1)  # names.REGISTER_SLAVE
_REREGISTER_SLAVE = const(2)  # names.REREGISTER_SLAVE
_RANGES = const(1)  # schema.RANGES
_SCALAR = const(0)  # schema.SCALAR
_SET = const(2)  # schema.SET
_SlaveRegisteredMessage = const(58)  # schema.SlaveRegisteredMessage
_SlaveReregisteredMessage = const(60)  # schema.SlaveReregisteredMessage
_TEXT = const(3)  # schema.TEXT
_Task = const(50)  # schema.Task
_Resource = const(14)  # schema.Resource
_Attribute = const(7)  # schema.Attribute

_W = "agent"
_RECOVERY = "micromesos.recovery"  # agent.py's
_DEFAULT_PING_TIMEOUT_MS = const(75000)  # DEFAULT_MASTER_PING_TIMEOUT (§2.2; agentinit.py's too)
_SEND_RETRY_MS = const(100)  # a registration message the transport refused: first retry after this ...
_SEND_RETRY_MAX_MS = const(5000)  # ... doubling up to this (agent.py's too)

# Both registration messages are sent as pieces (none longer than one Task) in field-number order, byte for
# byte what codec.encode writes for the whole message: 32 tasks make ~6 KB, more than the largest free
# block of a busy heap. Keys of ReregisterSlaveMessage's length-delimited fields (§3.11): (number << 3) | 2.
_K_TASKS = const(0x1A)           # 3
_K_EXECUTOR_INFOS = const(0x22)  # 4
_K_VERSION = const(0x32)         # 6
_K_CHECKPOINTED = const(0x3A)    # 7
_K_FRAMEWORKS = const(0x42)      # 8
# agent_capabilities (9): MULTI_ROLE, HIERARCHICAL_ROLE, RESERVATION_REFINEMENT and AGENT_DRAINING (drain.py;
# the master allows DRAIN_AGENT only with it), in the real 1.12 agent's order (it sends 1-8; §3.5).
_RR_CAPABILITIES = b"\x4a\x02\x08\x01\x4a\x02\x08\x02\x4a\x02\x08\x03\x4a\x02\x08\x07"
_R_CAPABILITIES = b"\x22\x02\x08\x01\x22\x02\x08\x02\x22\x02\x08\x03\x22\x02\x08\x07"  # RegisterSlaveMessage's: 4
_K_RR_SLAVE = const(0x12)        # ReregisterSlaveMessage.slave: 2
_K_SLAVE = const(0x0A)           # RegisterSlaveMessage.slave: 1
_K_VERSION_1 = const(0x12)       # RegisterSlaveMessage.version: 2
# SlaveInfo (§3.5): hostname 1, resources 3, attributes 5, id 6 (SlaveID.value: 1), checkpoint 7 (bool), port 8.
_K_HOSTNAME = const(0x0A)
_K_RESOURCES = const(0x1A)
_K_ATTRIBUTES = const(0x2A)
_K_ID = const(0x32)
_K_VALUE = const(0x0A)
_K_CHECKPOINT = const(0x38)
_K_PORT = const(0x40)
# AGENT_DRAINING, the last byte of both: a SlaveInfo.Capability.Type, not a schema global (tests/test_drain.py)
_AGENT_DRAINING = const(7)
_MERGE = const(96)  # _field: bodies up to this are copied behind their key


# --- (re-)registration ----------------------------------------------------------------------------------

def become_running(a, msg, connection):
    from .agent import RUNNING  # loaded: it called us

    a.state = RUNNING
    a.link = msg.conn
    if not msg.sender_is(a.master):  # the master may advertise another address (§1.6)
        a.master = msg.sender()
        a._ip1 = a.master.partition("@")[2].rpartition(":")[0]
    t = None
    if connection:
        t = connection.get("total_ping_timeout_seconds")
    if a.cfg["ping_timeout"]:
        t = a.cfg["ping_timeout"]
    a.ping_timeout_ms = int(t * 1000) if t else _DEFAULT_PING_TIMEOUT_MS
    a.last_ping = time.ticks_ms()
    a._registered.set()
    a.updates.resume()


def attempt(a, st):
    """One try of Agent._register: the (re-)registration queued for the master, or refused by the transport
    (outbox full, no route) or the heap. st: the loop's [k, refused ms], updated. -> seconds to wait for the
    answer before the next try."""
    k, refused = st
    a.fresh_registration = a.slave_id is None
    what = names.short(_REGISTER_SLAVE if a.fresh_registration else _REREGISTER_SLAVE)
    if not refused:
        log.info(_W, "sending %s to %s", what, a.master)
    try:
        ok = send_registration(a)
    except MemoryError:  # no room to build it (it grows with the live tasks)
        ok = False
    if ok:
        if refused:
            log.info(_W, "%s queued for %s", what, a.master)
        st[0] = k + 1
        st[1] = 0
        retry = a.cfg["registration_backoff_factor"] or 1.0  # factor 0 only drops the first random wait
        return random.random() * min(retry * (1 << k), a.cfg["registration_backoff_max"])
    if not refused:  # once per streak: the retries are quick
        log.warn(_W, "could not queue %s for %s (outbox full, no route or no heap): retrying", what, a.master)
    st[1] = min(refused * 2 or _SEND_RETRY_MS, _SEND_RETRY_MAX_MS)
    return st[1] / 1000


# --- SlaveInfo and the registration messages ------------------------------------------------------

def to_resource(name, v):
    """A Resource dict for the codec; unreserved, no role, no allocation_info (§3.4)."""
    if isinstance(v, float):
        return {"name": name, "type": _SCALAR, "scalar": {"value": v}}
    if isinstance(v, tuple):
        return {"name": name, "type": _SET, "set": {"item": list(v)}}
    return {"name": name, "type": _RANGES,
            "ranges": {"range": [{"begin": b, "end": e} for b, e in v]}}


def to_attribute(name, v):
    if isinstance(v, str):
        return {"name": name, "type": _TEXT, "text": {"value": v}}
    return to_resource(name, v)  # same keys; the codec's Attribute table puts `set` at field 6


def slave_info(a, with_id):
    """SlaveInfo (§3.5) as bytes-like pieces: joined, they are codec.encode() of it. Each Resource and
    Attribute is encoded as it is made: no dict of them all (~1.6 KB for a board's dozen) and no block of the
    whole message (a 32-bit board at its registration peak has no free block of 400 B)."""
    # hostname = the advertised IP, as the real agent with --no-hostname_lookup (§3.5).
    ip, _, port = a.upid.partition("@")[2].rpartition(":")
    out = []
    _field(out, _K_HOSTNAME, ip.encode())
    for n, v in a.totals:
        _field(out, _K_RESOURCES, codec.encode(_Resource, to_resource(n, v)))
    for n, v in a.attributes:
        _field(out, _K_ATTRIBUTES, codec.encode(_Attribute, to_attribute(n, v)))
    if with_id:  # id: a SlaveID, {1: value}
        sid = a.slave_id.encode()
        h = bytearray(1 + varint_size(len(sid)))
        h[0] = _K_VALUE
        put_varint(h, 1, len(sid))
        _field(out, _K_ID, h + sid)
    h = bytearray(3 + varint_size(int(port)))
    h[0] = _K_CHECKPOINT
    h[1] = 1
    h[2] = _K_PORT
    put_varint(h, 3, int(port))
    out.append(h)
    return out


def _message(out, key, pieces):
    # The length-delimited field `key` whose value is the pieces, appended to out without joining them.
    n = 0
    for p in pieces:
        n += len(p)
    h = bytearray(1 + varint_size(n))
    h[0] = key
    put_varint(h, 1, n)
    out.append(h)
    out.extend(pieces)


def send_registration(a):
    """RegisterSlaveMessage, or ReregisterSlaveMessage once a has an id, queued for the master. False if
    the transport refused it; MemoryError if the heap had no room to build it (the caller retries)."""
    kind = _REGISTER_SLAVE if a.slave_id is None else _REREGISTER_SLAVE
    if a.slave_id is None:
        pieces = []  # slave, version, agent_capabilities: what codec.encode writes, in pieces
        _message(pieces, _K_SLAVE, slave_info(a, False))
        _field(pieces, _K_VERSION_1, MESOS_VERSION.encode())
        pieces.append(_R_CAPABILITIES)
    else:
        pieces = reregistration(a)
    if not getattr(a.lp, "SENDS_PIECES", False):  # a transport that takes one body only: the message in one block
        return a.send_to_master(kind, b"".join(pieces))
    return a.send_to_master(kind, pieces)


def _field(out, key, body):
    # A small body (a Resource, an Attribute) is copied behind its key: one block instead of two (32 B less
    # each on a 32-bit board, at the registration peak). A large one (a Task) stays a piece of its own.
    n = len(body)
    k = 1 + varint_size(n)
    h = bytearray(k + n if n <= _MERGE else k)
    h[0] = key
    put_varint(h, 1, n)
    out.append(h)
    if n <= _MERGE:
        h[k:] = body
    else:
        out.append(body)


def reregistration(a):
    """ReregisterSlaveMessage as a list of bytes-like pieces; joined, they are codec.encode() of the whole
    message (§2.4): the live tasks with their executors and frameworks (tasks.reregistration)."""
    tasks, executors, fids = ([], [], ()) if a.tasks is None else a.tasks.reregistration()
    out = []
    _message(out, _K_RR_SLAVE, slave_info(a, True))
    while tasks:
        _field(out, _K_TASKS, codec.encode(_Task, tasks.pop(0)))  # each dict goes once encoded
    for e in executors:
        _field(out, _K_EXECUTOR_INFOS, e)
    _field(out, _K_VERSION, MESOS_VERSION.encode())
    for r in a.checkpointed:
        _field(out, _K_CHECKPOINTED, r)
    for f in sorted(fids):
        if f in a.frameworks:
            _field(out, _K_FRAMEWORKS, a.frameworks[f])
    out.append(_RR_CAPABILITIES)
    return out


# --- the master's answers and rare messages (dispatched by Agent._on_message) ----------------------

def registered(a, msg):
    m = codec.decode(_SlaveRegisteredMessage, msg.buf, msg.start, msg.end)
    sid = m["slave_id"]
    if a.connected():
        if sid != a.slave_id:
            log.error(_W, "master re-assigned id %s while running as %s: starting over", sid, a.slave_id)
            a.cold("forget", "master changed the agent id", mod=_RECOVERY)  # rare: recovery.py's
        return
    if a.slave_id is not None and not a.fresh_registration:
        log.warn(_W, "SlaveRegisteredMessage while re-registering ignored")
        return
    a.slave_id = sid
    a.checkpoint()
    a.counters["registrations"] += 1
    become_running(a, msg, m.get("connection"))
    log.info(_W, "registered with %s as agent %s", a.master, sid)
    # Reboot race (§2.2): a master that has not yet noticed our reboot hands back the OLD id and still
    # believes the old tasks run. One re-registration with what we really run makes it answer with
    # reconciliations for the rest, which we report lost.
    try:
        ok = send_registration(a)
    except MemoryError:
        ok = False
    if not ok:
        a.become_disconnected("could not queue the re-registration that follows a registration")


def reregistered(a, msg):
    m = codec.decode(_SlaveReregisteredMessage, msg.buf, msg.start, msg.end)
    if m["slave_id"] != a.slave_id:
        log.error(_W, "re-registered as %s but we are %s: ignored", m["slave_id"], a.slave_id)
        return
    if not a.connected():
        a.counters["reregistrations"] += 1
        become_running(a, msg, m.get("connection"))
        log.info(_W, "re-registered with %s as agent %s", a.master, a.slave_id)
    recs = m.get("reconciliations")
    if recs:  # the reboot race's answer (§2.2): rare, recovery.py's
        try:
            a.cold("reconcile", recs, mod=_RECOVERY)
        except MemoryError:  # not lost: the next re-registration's answer carries them again
            a.become_disconnected("no heap for the master's reconciliations")
