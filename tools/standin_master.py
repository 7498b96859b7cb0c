# Command line for the loopback stand-in Mesos 1.12 master: one line per event, JSON control API on the same port.
# MIT licence. `python tools/standin_master.py --port 5050 --ping-interval 15 [--registry f.json] [--events f.jsonl]`
import argparse
import asyncio
import os
import signal
import sys

_TOOLS = os.path.dirname(os.path.abspath(__file__))
for _p in (os.path.join(os.path.dirname(_TOOLS), "lib"), os.path.join(_TOOLS, "hostcompat"), _TOOLS):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from standin import StandinMaster  # noqa: E402

__all__ = ["StandinMaster", "main"]

_CONTROL_HELP = """control API (JSON; same port):
  POST /control/framework        {name, user, capabilities:[...], roles, checkpoint, ack: auto|manual|never}
  POST /control/launch           {command, task_id, resources, agent_id, framework_id, arguments, shell,
                                  uris, environment, data, kill_policy (grace seconds), name}
  POST /control/launch-group     {tasks:[{task_id, command, resources}], executor_id, executor_resources}
  POST /control/kill             {task_id, framework_id, grace_period}
  POST /control/ack              {task_id, framework_id, uuid ("hex:...")}
  POST /control/message          {data, executor_id, agent_id, framework_id}
  POST /control/shutdown-agent   {agent_id, message}      POST /control/shutdown-framework {framework_id}
  POST /control/shutdown-executor {executor_id, framework_id, agent_id}
  POST /control/cut-link         {agent_id}               POST /control/restart
  GET  /control/events?since=N   GET /control/wait?name=X&since=N&timeout=S
  GET  /control/agents  /control/frameworks  /control/tasks  /control/pending  /control/problems?since=N"""


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description="Loopback stand-in for a Mesos 1.12 master (a test and demo fixture).",
                                 epilog=_CONTROL_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on and advertise (default 127.0.0.1)")
    ap.add_argument("--advertise-ip", help="IP in master@ip:port when --host is 0.0.0.0 (boards on a LAN)")
    ap.add_argument("--port", type=int, default=5050)
    ap.add_argument("--ping-interval", type=float, default=15.0, help="agent_ping_timeout, seconds (default 15)")
    ap.add_argument("--max-missed", type=int, default=5, help="max_agent_ping_timeouts (default 5)")
    ap.add_argument("--ping-timeout", type=float, default=75.0,
                    help="total_ping_timeout_seconds sent to agents (default 75)")
    ap.add_argument("--reregister-timeout", type=float, default=600.0, help="agent_reregister_timeout, seconds")
    ap.add_argument("--registry", help="JSON file keeping agents, frameworks and tasks across restarts")
    ap.add_argument("--events", help="append every event as a JSON line to this file")
    ap.add_argument("--master-id", help="fixed master UUID (default: a fresh one per start)")
    ap.add_argument("--ack", default="auto", choices=("auto", "manual", "never"),
                    help="default status-update ack policy of frameworks")
    ap.add_argument("--authenticate_agents", "--authenticate-agents", action="store_true",
                    help="only agents that completed SASL CRAM-MD5 may register (needs --credentials)")
    ap.add_argument("--credentials", help='JSON file {"credentials": [{"principal": "...", "secret": "..."}]}')
    ap.add_argument("--quiet", action="store_true", help="do not print events")
    args = ap.parse_args(argv)
    if args.authenticate_agents and not args.credentials:
        ap.error("--authenticate_agents needs --credentials")
    return args


async def run(args):
    t0 = [None]

    def show(ev):
        if t0[0] is None:
            t0[0] = ev.time
        print(ev.line(t0[0]), flush=True)

    m = StandinMaster(host=args.host, port=args.port, ping_interval=args.ping_interval, max_missed=args.max_missed,
                      ping_timeout=args.ping_timeout, registry=args.registry, events=args.events,
                      master_id=args.master_id, reregister_timeout=args.reregister_timeout,
                      on_event=None if args.quiet else show, default_ack=args.ack, advertise_ip=args.advertise_ip,
                      authenticate_agents=args.authenticate_agents, credentials=args.credentials)
    await m.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await m.stop()
    m.log.close()


def main(argv=None):
    asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    main()
