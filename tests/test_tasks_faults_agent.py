# Task faults against a live virtual board and the stand-in master (issue 10 finding 5, issue 9 part 4): the agent
# process runs the fault modules of tests/tasks/ as Mesos tasks. MIT licence. Unit level: test_tasks_faults.py.
import os

from test_tasks_agent import _st, cluster, example, task_file  # noqa: F401  (cluster is a fixture)

FAULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tasks")


def fault(c, name):
    with open(os.path.join(FAULTS, name + ".py")) as f:
        task_file(c, name, f.read())


def test_keyboardinterrupt_and_generatorexit_fail_their_tasks_and_the_agent_stays(cluster):
    c = cluster(cfg={"log_level": "info"})
    fault(c, "kbint")
    fault(c, "genexit")
    example(c, "hello")
    c.start_agent()
    c.framework()
    k = c.launch("kbint", task_id="kbint-1")
    g = c.launch("genexit", task_id="genexit-1")
    for t in (k, g):
        c.wait_state(t, "TASK_FAILED", timeout=20)
    h = c.launch("hello", task_id="hello-after")
    c.wait_state(h, "TASK_FINISHED", timeout=20)  # the process survived both and still runs tasks
    assert c.proc.poll() is None, c.agent_log()[-3000:]
    assert _st(c.updates(k)[-1])["message"] == "KeyboardInterrupt"
    assert _st(c.updates(g)[-1])["message"] == "GeneratorExit"
    assert c.sync(lambda: c.master.agent().connected)
    assert c.problems() == []


def test_an_8kb_failure_message_reaches_the_master_truncated_once(cluster):
    c = cluster()
    fault(c, "hugefail")
    c.start_agent()
    c.framework()
    m = c.mark()
    t = c.launch("hugefail", task_id="huge-1", environment={"SIZE": "8192"})
    c.wait_state(t, "TASK_FAILED", timeout=20, since=m)
    ups = c.updates(t, since=m)
    terminal = [u for u in ups if _st(u)["state"] in (2, 3, 4, 5)]
    assert len(terminal) == 1, [_st(u) for u in ups]
    msg = _st(terminal[0])["message"]
    assert msg.startswith("ValueError: xxxx") and "truncated" in msg and len(msg.encode()) < 1024
    assert c.proc.poll() is None
    assert c.problems() == []
