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
