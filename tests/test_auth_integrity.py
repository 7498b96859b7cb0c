# Task code integrity (issue 13 part 4): require_pinned_uris refuses a URI without a #sha256= pin, and
# allowed_modules limits what frameworks may launch; both end as TASK_FAILED with the reason. The agent runs
# in the unix port against the stand-in master (test_tasks_agent.Cluster). MIT licence.
import hashlib

from test_tasks_agent import _st, cluster, example, http_files  # noqa: F401 (fixtures)

LAUNCH_FAILED = 21  # REASON_CONTAINER_LAUNCH_FAILED
CODE = b"async def main(ctx):\n    ctx.update(b'fetched')\n"


def test_unpinned_uris_are_refused_and_pinned_ones_run(cluster, http_files):  # noqa: F811
    root, base = http_files
    (root / "remote.py").write_bytes(CODE)
    good = hashlib.sha256(CODE).hexdigest()
    c = cluster(cfg={"require_pinned_uris": True})
    c.start_agent()
    c.framework()
    t1 = c.launch("remote", task_id="u1", uris=[{"value": "%s/remote.py" % base}])
    f1 = _st(c.wait_state(t1, "TASK_FAILED"))
    assert (f1["source"], f1["reason"]) == (1, LAUNCH_FAILED)
    assert f1["message"] == ("%s/remote.py has no #sha256= pin and this board requires one "
                             "(require_pinned_uris)" % base)
    assert not (c.fs / "tasks" / "remote.py").exists()  # nothing was fetched
    t2 = c.launch("remote", task_id="u2", uris=[{"value": "%s/remote.py#sha256=%s" % (base, good)}])
    c.wait_state(t2, "TASK_FINISHED")
    assert c.problems() == []


def test_only_allowed_modules_launch(cluster):  # noqa: F811
    c = cluster(cfg={"allowed_modules": "hello, thermo"})
    example(c, "hello")
    example(c, "blink")
    c.start_agent()
    c.framework()
    ok = c.launch("hello", task_id="a1", arguments=["lab"])
    c.wait_state(ok, "TASK_FINISHED")
    no = c.launch("blink", task_id="a2")
    f = _st(c.wait_state(no, "TASK_FAILED"))
    assert (f["source"], f["reason"]) == (1, LAUNCH_FAILED)
    assert f["message"] == "module blink is not allowed on this board (allowed_modules: hello, thermo)"
    assert c.states(no) == ["TASK_FAILED"]
    assert c.problems() == []
