# The stand-in master's --authenticate_agents (tools/standin/authn.py) against the captured agent side of
# golden/captured/auth/: its messages must be the real master's bytes, UPIDs and the challenge's nonce aside.
# MIT licence. Issue 13.
import asyncio
import hashlib
import hmac
import re
import socket

import standin
from test_auth_replay import A0, M0, Peer, expected, frame, raw, split

CREDS = {"credentials": [{"principal": "board-1", "secret": "s3cret-micro"}]}


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def exchange(secret, register=True):
    """Play the captured agent (scenario 09) against the stand-in; -> (master, what it sent, as raw bytes)."""
    async with standin.StandinMaster(authenticate_agents=True, credentials=CREDS, ping_interval=30) as m:
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(2)
        lsock.setblocking(False)
        A = b"127.0.0.1:%d" % lsock.getsockname()[1]
        M = b"127.0.0.1:%d" % m.port
        subs = [(A0, A), (M0, M)]
        loop = asyncio.get_running_loop()
        up = Peer(socket.create_connection(("127.0.0.1", m.port)))
        got = {}

        def io(fn, *a):
            return loop.run_in_executor(None, fn, *a)
        try:
            await io(up.send, expected(0, subs))               # AuthenticateMessage {pid: slave(1)@A}
            lsock.setblocking(True)
            s, _ = await io(lsock.accept)
            down = Peer(s)                                      # the master's own connection to the agent
            got["mechanisms"] = await io(down.request)
            await io(up.send, expected(3, subs))               # Start {CRAM-MD5, ""}
            got["challenge"] = await io(down.request)
            challenge = split(got["challenge"])[1][2:]
            lines = split(expected(7, subs))[0]
            answer = b"board-1 " + hmac.new(secret, challenge, hashlib.md5).hexdigest().encode()
            await io(up.send, frame(lines, b"\x0a" + bytes([len(answer)]) + answer))
            got["outcome"] = await io(down.request)
            await io(up.send, expected(12, subs))              # RegisterSlaveMessage, as captured
            if register:
                got["next"] = await io(down.request)
            else:
                await m.wait_for(lambda e: "not authenticated" in (e.reason or ""), timeout=10)
            got["202"] = await io(up.message)
            down.close()
        finally:
            up.close()
            lsock.close()
        return m, got, subs


def test_success_is_the_real_masters_bytes():
    m, got, subs = run(exchange(b"s3cret-micro"))
    assert got["202"].startswith(b"HTTP/1.1 202 Accepted\r\n")
    assert got["mechanisms"] == expected(2, subs)
    lines, body = split(got["challenge"])
    want_lines, want_body = split(expected(5, subs))
    assert lines == want_lines  # the same head; the body is this run's challenge
    assert re.fullmatch(rb"\x0a.<\d+\.\d+@[^>]+>", body, re.S) and body[1] == len(body) - 2
    assert got["outcome"] == expected(9, subs)  # AuthenticationCompletedMessage, empty body
    # Then the registration is accepted: a Ping or SlaveRegisteredMessage (their order is a race, README 6.)
    assert re.match(rb"POST /slave\(1\)/mesos.internal.(PingSlaveMessage|SlaveRegisteredMessage) ", got["next"])
    assert not m.problems()


def test_wrong_secret_is_refused_as_by_the_real_master():
    m, got, subs = run(exchange(b"not-the-secret", register=False))
    want = expected(57, [(b"127.0.0.1:25052", subs[0][1]), (M0, subs[1][1]), (b"session(3)", b"session(1)")])
    assert got["outcome"] == want  # AuthenticationFailedMessage, empty body
    # The registration that follows is dropped without an answer, as the real master does.
    assert not m.find("SlaveRegisteredMessage", kind="send")
    assert any("not authenticated" in (e.reason or "") for e in m.problems())


def test_capture_framing_used_here():
    assert raw(9).endswith(b"Host: 127.0.0.1:25051\r\n\r\n")
