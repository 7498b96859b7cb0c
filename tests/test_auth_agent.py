# Agent authentication end to end (issue 13): the unix-port board against the stand-in master started with
# --authenticate_agents (tools/standin/authn.py, byte-compatible with golden/captured/auth/). MIT licence.
import asyncio
import json
import os
import urllib.request

from test_agent_lifecycle import StandinMaster, no_problems, registered, run
from vboard_proc import Board

CREDS = {"credentials": [{"principal": "board-1", "secret": "s3cret-micro"}]}
FAST = {"authentication_timeout_min": 0.5, "authentication_backoff_factor": 0.2, "authentication_timeout_max": 3.0}


def board(tmp_path, port, secret="s3cret-micro", **cfg):
    fs = tmp_path / "b"
    os.makedirs(fs, exist_ok=True)
    write_credential(fs, secret)
    cfg.setdefault("credential", "credential.json")
    return Board(fs, port, **cfg)


def write_credential(fs, secret, principal="board-1"):
    with open(os.path.join(str(fs), "credential.json"), "w") as f:
        json.dump({"principal": principal, "secret": secret}, f)


def get(port, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10) as r:
        return r.read()


def sessions_completed(m, since=0):
    return [e for e in m.find("AuthenticationCompletedMessage", since=since, kind="send")]


def test_authenticates_then_registers(tmp_path):
    async def body():
        async with StandinMaster(authenticate_agents=True, credentials=CREDS, ping_interval=0.5) as m:
            b = board(tmp_path, m.port).start()
            try:
                await registered(m, b)
                auth = m.find("AuthenticateMessage", kind="recv")
                assert [e.src.split("@")[0] for e in auth] == ["crammd5-authenticatee(1)"]
                assert auth[0].body == {"pid": b.upid}
                assert len(sessions_completed(m)) == 1 and b.upid in m.auth.authenticated
                reg = m.find("RegisterSlaveMessage", kind="recv")[0]
                assert reg.seq > sessions_completed(m)[0].seq and reg.src == b.upid
                await m.wait_for("PongSlaveMessage", kind="recv", timeout=10)
                no_problems(m)
                assert not b.find("s3cret-micro")
                for path in ("/flags", "/state"):  # the file's name only, never its secret
                    body = await asyncio.get_running_loop().run_in_executor(None, get, b.port, path)
                    assert b'"credential":"credential.json"' in body and b"s3cret" not in body, body[:300]
            finally:
                b.stop()
    run(body())


def test_a_board_without_credential_is_refused_silently_as_by_the_real_master(tmp_path):
    async def body():
        async with StandinMaster(authenticate_agents=True, credentials=CREDS) as m:
            b = Board(tmp_path / "b", m.port).start()
            try:
                ev = await m.wait_for(lambda e: e.kind == "dropped" and "not authenticated" in (e.reason or ""),
                                      timeout=15)
                assert ev.name == "RegisterSlaveMessage"
                assert not m.find("SlaveRegisteredMessage", kind="send")
            finally:
                b.stop()
    run(body())


def test_wrong_secret_keeps_running_retries_and_recovers_once_fixed(tmp_path):
    async def body():
        async with StandinMaster(authenticate_agents=True, credentials=CREDS, ping_interval=0.5) as m:
            b = board(tmp_path, m.port, secret="not-the-secret", **FAST).start()
            try:
                await b.await_line(r"refused authentication as board-1", timeout=15)
                await m.wait_for(lambda e: e.name == "AuthenticateMessage" and e.kind == "recv"
                                 and e.src.startswith("crammd5-authenticatee(3)@"), timeout=20)
                assert b.alive() and m.auth.failed >= 2 and not m.auth.authenticated
                assert not m.find("RegisterSlaveMessage", kind="recv")  # never without authentication
                refusals = b.find(r"refused authentication")
                assert len(refusals) == m.auth.failed or len(refusals) == m.auth.failed - 1
                assert not b.find("not-the-secret")
                write_credential(b.fs, "s3cret-micro")  # the operator fixes the file: no reboot needed
                await registered(m, b)
                no_problems(m)
            finally:
                b.stop()
    run(body())


def test_master_restart_means_authenticating_again_before_reregistering(tmp_path):
    async def body():
        async with StandinMaster(authenticate_agents=True, credentials=CREDS, ping_interval=0.5) as m:
            b = board(tmp_path, m.port, **FAST).start()
            try:
                sid = await registered(m, b)
                mark = b.mark()
                await m.restart()
                since = m.mark()
                ev = await m.wait_for("SlaveReregisteredMessage", kind="send", timeout=30, since=since)
                assert ev.body["slave_id"] == sid
                auth = m.find("AuthenticateMessage", kind="recv", since=since)
                assert auth and auth[0].src.startswith("crammd5-authenticatee(2)@")
                done = sessions_completed(m, since)
                assert done and done[0].src.startswith("crammd5-authenticator-session(1)@")  # a new master
                rereg = m.find("ReregisterSlaveMessage", kind="recv", since=since)
                assert rereg[0].seq > done[0].seq
                b.wait_line(r"successfully authenticated", since=mark)
                no_problems(m)
            finally:
                b.stop()
    run(body())


def test_a_missing_credential_file_is_one_line_per_try_and_no_registration(tmp_path):
    async def body():
        async with StandinMaster(authenticate_agents=True, credentials=CREDS) as m:
            b = Board(tmp_path / "b", m.port, credential="nowhere.json", authentication_timeout_min=0.3).start()
            try:
                line = await b.await_line(r"ERROR authn: .*nowhere.json: cannot read the credential file.*"
                                          r"retrying in", timeout=15)
                await b.await_line(r"cannot read the credential file", timeout=15, since=b.mark())
                assert b.alive() and "Traceback" not in b.output(), line
                assert not m.find("AuthenticateMessage", kind="recv")
                assert not m.find("RegisterSlaveMessage", kind="recv")  # never without authentication
            finally:
                b.stop()
    run(body())


def test_authn_private_state_number_is_the_agents():
    # authn.wanted() reads agent.state against its own const (no import of agent.py's globals from a module
    # loaded per use); it must be agent.DISCONNECTED.
    import re

    import mpy

    def const(f, name):
        with open(os.path.join(mpy.LIB, "micromesos", f)) as fh:
            return re.search(r"^%s = const\((\d+)\)" % name, fh.read(), re.M).group(1)
    assert const("authn.py", "_DISCONNECTED") == const("agent.py", "DISCONNECTED") == "1"
