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
_HIERARCHICAL_ROLE = const(2)  # schema.HIERARCHICAL_ROLE
_MULTI_ROLE = const(1)  # schema.MULTI_ROLE
_RANGES = const(1)  # schema.RANGES
_RESERVATION_REFINEMENT = const(3)  # schema.RESERVATION_REFINEMENT
_RegisterSlaveMessage = const(54)  # schema.RegisterSlaveMessage
_ReregisterSlaveMessage = const(56)  # schema.ReregisterSlaveMessage
_SCALAR = const(0)  # schema.SCALAR
_SET = const(2)  # schema.SET
_SlaveRegisteredMessage = const(58)  # schema.SlaveRegisteredMessage
_SlaveReregisteredMessage = const(60)  # schema.SlaveReregisteredMessage
_TEXT = const(3)  # schema.TEXT
_Task = const(50)  # schema.Task

_W = "agent"
_RECOVERY = "micromesos.recovery"  # agent.py's
_DEFAULT_PING_TIMEOUT_MS = const(75000)  # DEFAULT_MASTER_PING_TIMEOUT (§2.2; agentinit.py's too)
_SEND_RETRY_MS = const(100)  # a registration message the transport refused: first retry after this ...
_SEND_RETRY_MAX_MS = const(5000)  # ... doubling up to this (agent.py's too)

# ReregisterSlaveMessage is sent as pieces (none longer than one Task) in field-number order, byte for
# byte what codec.encode writes for the whole message: 32 tasks make ~6 KB, more than the largest free
# block of a busy heap. Keys of its length-delimited fields (§3.11): (number << 3) | 2.
_K_TASKS = const(0x1A)           # 3
_K_EXECUTOR_INFOS = const(0x22)  # 4
_K_VERSION = const(0x32)         # 6
_K_CHECKPOINTED = const(0x3A)    # 7
_K_FRAMEWORKS = const(0x42)      # 8
# agent_capabilities (9): MULTI_ROLE, HIERARCHICAL_ROLE, RESERVATION_REFINEMENT and AGENT_DRAINING (drain.py;
# the master allows DRAIN_AGENT only with it), in the real 1.12 agent's order (it sends 1-8; §3.5).
_RR_CAPABILITIES = b"\x4a\x02\x08\x01\x4a\x02\x08\x02\x4a\x02\x08\x03\x4a\x02\x08\x07"
_AGENT_DRAINING = const(7)  # SlaveInfo.Capability.Type; not a schema global (tests/test_drain.py checks it)


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
    # hostname = the advertised IP, as the real agent with --no-hostname_lookup (§3.5).
    ip, _, port = a.upid.partition("@")[2].rpartition(":")
    info = {"hostname": ip, "port": int(port),
            "resources": [to_resource(n, v) for n, v in a.totals],
            "attributes": [to_attribute(n, v) for n, v in a.attributes],
            "checkpoint": True}
    if with_id:
        info["id"] = a.slave_id
    return info


def send_registration(a):
    """RegisterSlaveMessage, or ReregisterSlaveMessage once a has an id, queued for the master. False if
    the transport refused it; MemoryError if the heap had no room to build it (the caller retries)."""
    if a.slave_id is None:
        return a.send_to_master(_REGISTER_SLAVE, codec.encode(_RegisterSlaveMessage, {
            "slave": slave_info(a, False), "version": MESOS_VERSION, "checkpointed_resources": [],
            "agent_capabilities": [{"type": _MULTI_ROLE}, {"type": _HIERARCHICAL_ROLE},
                                   {"type": _RESERVATION_REFINEMENT}, {"type": _AGENT_DRAINING}]}))
    pieces = reregistration(a)
    if not getattr(a.lp, "SENDS_PIECES", False):
        pieces = b"".join(pieces)  # a transport that takes one body only: the whole message in one block
    return a.send_to_master(_REREGISTER_SLAVE, pieces)


def _field(out, key, body):
    h = bytearray(1 + varint_size(len(body)))
    h[0] = key
    put_varint(h, 1, len(body))
    out.append(h)
    out.append(body)


def reregistration(a):
    """ReregisterSlaveMessage as a list of bytes-like pieces; joined, they are codec.encode() of the whole
    message (§2.4): the live tasks with their executors and frameworks (tasks.reregistration)."""
    tasks, executors, fids = ([], [], ()) if a.tasks is None else a.tasks.reregistration()
    out = [codec.encode(_ReregisterSlaveMessage, {"slave": slave_info(a, True)})]
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
