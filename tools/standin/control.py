# The stand-in master's control API on its own port (/control/...): drive it from another process with JSON.
# MIT licence. Not part of Mesos; ordinary HTTP, told apart from messages by the absence of libprocess headers.
import asyncio
import json
from urllib.parse import parse_qs

from . import drain, lphttp, pb
from .ops import Refused

MAX_EVENTS_PER_GET = 5000


def _bytes(s):
    """JSON text -> bytes: 'hex:..' is hex, anything else is UTF-8."""
    if s is None:
        return None
    return bytes.fromhex(s[4:]) if s.startswith("hex:") else s.encode()


class Control:
    """POST /control/{framework,launch,launch-group,kill,ack,message,shutdown-agent,shutdown-framework,
    shutdown-executor,drain-agent,reactivate-agent,cut-link,restart}; GET /control/{events,wait,agents,
    frameworks,tasks,pending,drain}."""

    def __init__(self, master):
        self.m = master

    async def handle(self, req):
        name = req.path[len("/control/"):]
        q = {k: v[-1] for k, v in parse_qs(req.query).items()}
        try:
            if req.method == "GET":
                fn = getattr(self, "get_" + name.replace("-", "_"), None)
                args = q
            elif req.method == "POST":
                fn = getattr(self, "post_" + name.replace("-", "_"), None)
                args = json.loads(req.body.decode() or "{}") if req.body else {}
                if not isinstance(args, dict):
                    raise ValueError("the JSON body must be an object")
            else:
                fn, args = None, None
            if fn is None:
                return self._reply(404, "Not Found", {"error": "no control endpoint %s %s" % (req.method, req.path)})
            out = await fn(**args)
            return self._reply(200, "OK", out)
        except TypeError as e:
            return self._reply(400, "Bad Request", {"error": "bad arguments: %s" % e})
        except (Refused, ValueError, LookupError, asyncio.TimeoutError) as e:
            return self._reply(400, "Bad Request", {"error": str(e), "type": type(e).__name__})
        except Exception as e:  # noqa: BLE001 -- a fixture bug must reach the client, not kill the master
            return self._reply(500, "Internal Server Error", {"error": repr(e)})

    def _reply(self, code, reason, obj):
        return lphttp.json_response(code, reason, json.dumps(pb.jsonable(obj), sort_keys=True).encode())

    # --- commands ----------------------------------------------------------------------------------

    async def post_framework(self, **kw):
        return {"framework_id": self.m.create_framework(**kw)}

    async def post_launch(self, data=None, **kw):
        tid = await self.m.launch(data=_bytes(data), **kw)
        t = self.m._task(tid, kw.get("framework_id"))
        return {"task_id": tid, "framework_id": t.framework_id, "agent_id": t.agent_id}

    async def post_launch_group(self, tasks, **kw):
        for spec in tasks:
            if spec.get("data") is not None:
                spec["data"] = _bytes(spec["data"])
        return {"task_ids": await self.m.launch_group(tasks, **kw)}

    async def post_kill(self, task_id, framework_id=None, grace_period=None):
        return {"sent": await self.m.kill(task_id, framework_id, grace_period)}

    async def post_ack(self, task_id, framework_id=None, uuid=None):
        return {"uuid": await self.m.ack(task_id, framework_id, _bytes(uuid))}

    async def post_message(self, data, executor_id=None, agent_id=None, framework_id=None):
        await self.m.send_framework_message(_bytes(data), executor_id, agent_id, framework_id)
        return {"sent": True}

    async def post_shutdown_agent(self, agent_id=None, message="Agent has been marked gone"):
        await self.m.shutdown_agent(agent_id, message)
        return {"sent": True}

    async def post_shutdown_framework(self, framework_id):
        await self.m.shutdown_framework(framework_id)
        return {"sent": True}

    async def post_shutdown_executor(self, executor_id, framework_id=None, agent_id=None):
        await self.m.shutdown_executor(executor_id, framework_id, agent_id)
        return {"sent": True}

    async def post_drain_agent(self, agent_id=None, max_grace_period=None, mark_gone=False):
        return {"drain": drain.drain_agent(self.m, agent_id, max_grace_period, mark_gone)}  # drain.py

    async def post_reactivate_agent(self, agent_id=None):
        drain.reactivate_agent(self.m, agent_id)
        return {"reactivated": True}

    async def post_cut_link(self, agent_id=None):
        return {"cut": await self.m.cut_link(agent_id)}

    async def post_restart(self):
        # Answer first: restarting closes this very connection.
        asyncio.get_running_loop().call_later(0.05, lambda: asyncio.ensure_future(self.m.restart()))
        return {"restarting": True}

    # --- views -------------------------------------------------------------------------------------

    async def get_events(self, since="0", kind=None, name=None):
        since = int(since)
        evs = [e for e in self.m.events[since:] if (kind is None or e.kind == kind) and
               (name is None or e.name == name)][:MAX_EVENTS_PER_GET]
        nxt = evs[-1].seq + 1 if len(evs) == MAX_EVENTS_PER_GET else len(self.m.events)
        return {"events": [e.to_json() for e in evs], "next": nxt}

    async def get_wait(self, name, since="0", timeout="5", kind=None):
        """Long poll: the first event named `name` (or of kind `name`) from index `since`."""
        ev = await self.m.wait_for(name, timeout=min(float(timeout), 120.0), since=int(since), kind=kind)
        return {"event": ev.to_json()}

    async def get_agents(self):
        return {"agents": self.m.agents_json(), "master": self.m.upid, "master_id": self.m.master_id}

    async def get_drain(self, agent_id=None):
        return {"drain": drain.state(self.m, agent_id)}

    async def get_frameworks(self):
        return {"frameworks": self.m.frameworks_json()}

    async def get_tasks(self):
        return {"tasks": self.m.tasks_json()}

    async def get_pending(self, task_id=None):
        return {"pending": [{"framework_id": f, "task_id": t, "uuid": u, "state": s}
                            for f, t, u, s in self.m.pending(task_id)]}

    async def get_problems(self, since="0"):
        return {"problems": [e.to_json() for e in self.m.problems(int(since))]}
