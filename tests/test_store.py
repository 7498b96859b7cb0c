# Checkpoints: atomic replace, recovery from a half-finished replace, corrupt file -> None (logged).


def test_save_load_replace_delete(mpy_run, tmp_path):
    r = mpy_run("""
from micromesos.store import Store
s = Store(%r + "/a/b")
print(s.load("agent"))
s.save("agent", {"slave_id": "S0"})
s.save("agent", {"slave_id": "S1", "n": [1, 2]})
print(sorted(s.load("agent").items()))
s.delete("agent")
print(s.load("agent"))
""" % str(tmp_path)).check()
    assert r.lines() == ["None", "[('n', [1, 2]), ('slave_id', 'S1')]", "None"]
    assert not (tmp_path / "a" / "b" / "agent.json.tmp").exists()


def test_power_cut_between_remove_and_rename_recovers_tmp(mpy_run, tmp_path):
    d = tmp_path / "st"
    d.mkdir()
    (d / "agent.json.tmp").write_text('{"slave_id": "S7"}')
    r = mpy_run("from micromesos.store import Store\nprint(Store(%r).load('agent'))" % str(d)).check()
    assert r.out.strip() == "{'slave_id': 'S7'}"


def test_corrupt_checkpoint_is_logged_and_reads_as_none(mpy_run, tmp_path):
    d = tmp_path / "st"
    d.mkdir()
    (d / "agent.json").write_bytes(b"\x00\xffgarbage{")
    r = mpy_run("from micromesos.store import Store\nprint(Store(%r).load('agent'))" % str(d)).check()
    assert r.lines()[-1] == "None"
    assert "ERROR store: checkpoint" in r.out and "corrupt" in r.out


def test_checkpoint_larger_than_any_free_block_is_streamed(mpy_run, tmp_path):
    # Fill the heap so no block near the JSON's size is left: json.dumps() fails, the streamed
    # path writes the same JSON through a 256-byte buffer.
    r = mpy_run("""
import gc, json
from micromesos.store import Store
s = Store(%r)
obj = [{"task_id": "task-%%d" %% i, "uuid": "ab" * 16, "state": 1} for i in range(60)]
expect = json.dumps(obj)
n = len(expect)
gc.collect()
ballast = None
for size in (4096, 2048, 1024, 512):  # small holes stay free for small objects
    try:
        while True:
            ballast = (bytearray(size - 16), ballast)
    except MemoryError:
        pass
try:
    json.dumps(obj)
    print("dumps worked")
except MemoryError:
    print("dumps failed")
s.save("big", obj)
ballast = None
gc.collect()
print(open(%r).read() == expect, n)
""" % (str(tmp_path), str(tmp_path / "big.json")), heapsize="96k").check()
    lines = r.lines()
    assert lines[0] == "dumps failed"  # the test really exercises the streamed path
    ok, n = lines[1].split()
    assert ok == "True" and int(n) > 4000
