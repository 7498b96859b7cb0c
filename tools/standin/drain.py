# The stand-in master's side of draining: operator DRAIN_AGENT / REACTIVATE_AGENT, the drain re-sent on re-registration.
# MIT licence. As src/master/http.cpp drainAgent, _reactivateAgent; master.cpp checkAndTransitionDrainingAgent.
from .events import INFO
from .model import Agent

AGENT_DRAINING = 7  # SlaveInfo.Capability.Type (PROTOCOL.md §3.5)
DRAINING, DRAINED = "DRAINING", "DRAINED"  # mesos::DrainState


def _table(m):
    # agent id -> {"state", "config"}: the registry's drain records. Kept on the master object, which a
    # stand-in restart (restart()) keeps, as the real registry survives a master failover.
    t = getattr(m, "drain_records", None)
    if t is None:
        t = m.drain_records = {}
    return t


def drain_agent(m, agent_id=None, max_grace_period=None, mark_gone=False):
    """DRAIN_AGENT: refused for an agent without AGENT_DRAINING; otherwise recorded as DRAINING, the agent
    deactivated (no offers: launches through this fixture then model an offer accepted before the drain)
    and sent DrainSlaveMessage{config}. max_grace_period in seconds. -> the drain record."""
    a = m.agent(agent_id)
    if a.state == Agent.REGISTERED and AGENT_DRAINING not in a.capabilities:
        m._refuse("Agent %s is not capable of draining" % a.id)  # BadRequest in Master::Http::drainAgent
    if a.state not in (Agent.REGISTERED, Agent.RECOVERED, Agent.UNREACHABLE):
        m._refuse("Unknown agent")
    cfg = {"mark_gone": bool(mark_gone)}
    if max_grace_period is not None:
        cfg["max_grace_period"] = {"nanoseconds": int(round(float(max_grace_period) * 1e9))}
    rec = _table(m)[a.id] = {"state": DRAINING, "config": cfg}
    m.record(INFO, agent=a.id, reason="agent %s DRAINING (deactivated; max_grace_period %s, mark_gone %s)"
             % (a.id, max_grace_period, bool(mark_gone)))
    if a.state == Agent.REGISTERED:
        m.send(a.pid, "DrainSlaveMessage", {"config": cfg})
        check(m, a)
    return rec


def resend(m, a):
    """On re-registration of a draining agent (DRAINING or DRAINED): DrainSlaveMessage again."""
    rec = _table(m).get(a.id)
    if rec is not None:
        m.send(a.pid, "DrainSlaveMessage", {"config": rec["config"]})
        check(m, a)


def check(m, a):
    """checkAndTransitionDrainingAgent: a DRAINING agent with no task left in the master's books (each
    is removed once its terminal update is acknowledged) becomes DRAINED, or is marked gone."""
    rec = _table(m).get(a.id)
    if rec is None or rec["state"] != DRAINING:
        return
    if any(t.agent_id == a.id for t in m.tasks.values()):
        return
    if rec["config"]["mark_gone"]:
        m.record(INFO, agent=a.id, reason="agent %s drained: marking it gone" % a.id)
        m.send(a.pid, "ShutdownMessage", {"message": "Agent has been marked gone"})
        m.remove_agent(a, "marked gone after draining", Agent.GONE)
        del _table(m)[a.id]
        return
    rec["state"] = DRAINED
    m.record(INFO, agent=a.id, reason="agent %s DRAINED" % a.id)


def state(m, agent_id=None):
    """The agent's drain record ({"state", "config"}) after checking for the DRAINED transition, or None."""
    a = m.agent(agent_id)
    check(m, a)
    return _table(m).get(a.id)


def reactivate_agent(m, agent_id=None):
    """REACTIVATE_AGENT: refused while DRAINING; a DRAINED agent is active again. Nothing is sent to the
    agent: it ended its drain itself once it had nothing left (Slave::updateDrainStatus)."""
    a = m.agent(agent_id)
    check(m, a)
    rec = _table(m).get(a.id)
    if rec is None:
        m._refuse("Agent is not deactivated")
    if rec["state"] == DRAINING:
        m._refuse("Agent is still in the DRAINING state")
    _table(m).pop(a.id, None)
    m.record(INFO, agent=a.id, reason="agent %s reactivated" % a.id)
