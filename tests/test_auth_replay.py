# Agent authentication against the captured master side: golden/captured/auth/ (a real Mesos 1.12 master
# with --authenticate_agents and real agents) replayed at the unix-port board over loopback sockets; the
# board's bytes must equal the captured agent's, UPIDs aside. MIT licence. Issue 13.
import base64
import json
import os
import socket
import time

import pytest

import mpy
from vboard_proc import Board

CAP = os.path.join(mpy.GOLDEN, "captured", "auth", "master-agent-auth.jsonl")
A0, M0 = b"127.0.0.1:25051", b"127.0.0.1:25050"  # the main agent and master in the capture
PRINCIPAL, SECRET = "board-1", "s3cret-micro"
# Small timeouts so that retries happen within a test; the wire is the same with §7's defaults.
FAST = {"authentication_timeout_min": 0.4, "authentication_backoff_factor": 0.1, "authentication_timeout_max": 2.0}
# Attempts that live at least 3 s: room for a whole exchange on a loaded machine, and still a quick retry.
SLOW = {"authentication_timeout_min": 3.0, "authentication_backoff_factor": 0.1, "authentication_timeout_max": 10.0}


def records():
    with open(CAP) as f:
        return {r["seq"]: r for r in map(json.loads, f)}


REC = records()


def raw(seq):
    return base64.b64decode(REC[seq]["raw_b64"])


def split(msg):
    """An HTTP request -> (head lines, de-chunked body)."""
    head, _, rest = msg.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    body = b""
    if b"Transfer-Encoding: chunked" in lines:
        while True:
            size, _, rest = rest.partition(b"\r\n")
            n = int(size, 16)
            if n == 0:
                break
            body += rest[:n]
            rest = rest[n + 2:]
    return lines, body


def frame(lines, body):
    out = b"\r\n".join(lines) + b"\r\n\r\n"
    if body:
        out += b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
    return out


def expected(seq, subs):
    """Captured request `seq` with its addresses and process ids replaced, re-framed (a UPID of another
    length changes the AuthenticateMessage's length byte and the chunk size, and nothing else)."""
    lines, body = split(raw(seq))

    def sub(b):
        for old, new in subs:
            b = b.replace(old, new)
        return b
    lines = [sub(x) for x in lines]
    if REC[seq]["type"] == "mesos.internal.AuthenticateMessage":  # {pid}: re-encode the one field
        pid = sub(body[2:])
        body = b"\x0a" + bytes([len(pid)]) + pid
    return frame(lines, body)


class Peer:
    """One side of a TCP connection that reads whole HTTP messages."""

    def __init__(self, sock):
        self.s = sock
        self.s.settimeout(20)
        self.buf = b""

    def _more(self):
        d = self.s.recv(65536)
        if not d:
            raise EOFError("connection closed; have %r" % self.buf)
        self.buf += d

    def message(self):
        """The next whole request or response, raw."""
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, _, _ = self.buf.partition(b"\r\n\r\n")
        n = len(head) + 4
        if b"Transfer-Encoding: chunked" in head:
            while b"\r\n0\r\n\r\n" not in self.buf[n - 2:]:
                self._more()
            n = self.buf.index(b"\r\n0\r\n\r\n", n - 2) + 7
        else:
            for ln in head.split(b"\r\n"):
                if ln.lower().startswith(b"content-length:"):
                    n += int(ln.split(b":")[1])
            while len(self.buf) < n:
                self._more()
        m, self.buf = self.buf[:n], self.buf[n:]
        return m

    def request(self):
        """The next request, answering it 202 as the master does (the board drains the answers)."""
        m = self.message()
        self.s.sendall(raw(1))
        return m

    def send(self, data):
        self.s.sendall(data)

    def close(self):
        self.s.close()


class Replay:
    """The fake master: a listening socket, the board's connection to it, our connection to the board."""

    def __init__(self, tmp_path, secret=SECRET, **cfg):
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(4)
        self.lsock.settimeout(20)
        mport = self.lsock.getsockname()[1]
        fs = tmp_path / "board"
        os.makedirs(fs, exist_ok=True)
        with open(fs / "credential.json", "w") as f:
            json.dump({"principal": PRINCIPAL, "secret": secret}, f)
        cfg.setdefault("credential", "credential.json")
        self.board = Board(fs, mport, **cfg)
        self.A = b"127.0.0.1:%d" % self.board.port
        self.M = b"127.0.0.1:%d" % mport
        self.up = self.down = None

    def start(self):
        self.board.start()
        s, _ = self.lsock.accept()
        self.up = Peer(s)  # the board's connection to the master (conn0 in the capture)
        return self

    def connect(self):
        self.down = Peer(socket.create_connection(("127.0.0.1", self.board.port), timeout=20))

    def subs(self, agent_port=A0):
        return [(agent_port, self.A), (M0, self.M)]

    def close(self):
        for p in (self.up, self.down):
            if p is not None:
                p.close()
        self.lsock.close()
        self.board.stop()


@pytest.fixture
def replay(tmp_path):
    made = []

    def make(**kw):
        r = Replay(tmp_path, **kw)
        made.append(r)
        return r.start()
    yield make
    for r in made:
        r.close()


def status(resp):
    return resp.split(b"\r\n", 1)[0]


def test_capture_is_what_these_tests_rely_on():
    assert len(REC) == 222 and all(r["complete"] for r in REC.values())
    assert split(raw(3))[1] == b"\x0a\x08CRAM-MD5\x12\x00"
    assert split(raw(7))[1] == b"\x0a\x28board-1 fc19ec21bba2e5335aa8214fd0e76e9b"


def test_authenticate_then_register_byte_for_byte(replay):
    """09-auth-register: AuthenticateMessage, Start, the HMAC step (same challenge -> the same digest as
    the real agent's) and RegisterSlaveMessage's head, each exactly as captured."""
    r = replay()
    subs = r.subs()
    assert r.up.request() == expected(0, subs)
    r.connect()  # the master opens its own connection for Mechanisms (conn1)
    r.down.send(expected(2, subs))
    assert status(r.down.message()) == b"HTTP/1.1 202 Accepted"
    assert r.up.request() == expected(3, subs)
    r.down.send(expected(5, subs))  # the captured challenge <2116811070.617598@vm>
    assert status(r.down.message()) == b"HTTP/1.1 202 Accepted"
    assert r.up.request() == expected(7, subs)  # board-1 fc19ec21bba2e5335aa8214fd0e76e9b
    r.down.send(expected(9, subs))
    assert status(r.down.message()) == b"HTTP/1.1 202 Accepted"
    reg = r.up.request()
    want_lines, _ = split(expected(12, subs))
    got_lines, body = split(reg)
    assert got_lines == want_lines  # from slave(1), the pid the AuthenticateMessage named
    assert body.startswith(b"\x0a")  # SlaveInfo first; its resources are this board's
    r.down.send(expected(14, subs))  # a ping before SlaveRegisteredMessage (a race the real agent takes)
    assert status(r.down.message()) == b"HTTP/1.1 202 Accepted"
    pong = r.up.request()
    while pong.startswith(want_lines[0]):  # the registration retried meanwhile (its backoff here is 0.05 s: a
        pong = r.up.request()              # loaded machine can take longer than that to send the ping)
    assert pong == expected(15, subs)
    r.board.wait_line(r"successfully authenticated with master")
    assert not r.board.find(SECRET), "the secret must never be logged"


def test_wrong_secret_is_logged_once_per_refusal_and_retried(replay):
    """11-auth-wrong-secret: the same digest as the real agent with `not-the-secret`, then Failed; the real
    agent exits with status 1, the board logs why and authenticates again as crammd5-authenticatee(2)."""
    r = replay(secret="not-the-secret", **FAST)
    subs = [(b"127.0.0.1:25052", r.A), (M0, r.M), (b"session(3)", b"session(1)")]
    assert r.up.request() == expected(48, subs)
    r.connect()
    for seq_in, seq_out in ((50, 51), (53, 55)):
        r.down.send(expected(seq_in, subs))
        assert status(r.down.message()) == b"HTTP/1.1 202 Accepted"
        assert r.up.request() == expected(seq_out, subs)
    t0 = time.time()
    r.down.send(expected(57, subs))  # AuthenticationFailedMessage
    assert status(r.down.message()) == b"HTTP/1.1 202 Accepted"
    line = r.board.wait_line(r"refused authentication")
    assert "board-1" in line and "not-the-secret" not in r.board.output()
    again = r.up.request()  # no exit: a new attempt, a new authenticatee
    assert time.time() - t0 < 10
    assert again == expected(0, [(A0, r.A), (M0, r.M)]).replace(b"authenticatee(1)", b"authenticatee(2)")
    assert r.board.alive()


def test_timed_out_attempts_are_retried_and_stale_ones_answered_404(replay):
    """16-auth-timeout-retry: unanswered AuthenticateMessages are retried from a new authenticatee each time;
    the master's late Mechanisms to a finished attempt gets 404, the live one completes."""
    r = replay(**SLOW)
    subs = [(b"127.0.0.1:25055", r.A), (M0, r.M)]
    assert r.up.request() == expected(188, subs)
    assert r.up.request() == expected(189, subs)  # (2), after the first attempt's timeout
    r.board.wait_line(r"authentication timed out")
    r.connect()
    # The master answers attempt (1) late: the board no longer runs that process.
    r.down.send(expected(200, subs))
    assert status(r.down.message()) == b"HTTP/1.1 404 Not Found"
    # Attempt (2) is live in this run (the capture's live one was (3)): the same exchange, renumbered.
    live = subs + [(b"authenticatee(3)", b"authenticatee(2)")]
    r.down.send(expected(199, live))
    assert status(r.down.message()) == b"HTTP/1.1 202 Accepted"
    assert r.up.request() == expected(202, live)
    r.down.send(expected(204, live))
    assert status(r.down.message()) == b"HTTP/1.1 202 Accepted"
    assert r.up.request() == expected(205, live)  # board-1 94b80e74b269561cce3dbe920384e962
    r.down.send(expected(208, live))
    assert status(r.down.message()) == b"HTTP/1.1 202 Accepted"
    got_lines, _ = split(r.up.request())
    assert got_lines == split(expected(212, subs))[0]


def test_messages_from_strangers_do_not_move_the_exchange(replay):
    """Mechanisms/Step/Completed from anything but the master's authenticator session are dropped."""
    r = replay(**SLOW)
    subs = r.subs()
    assert r.up.request() == expected(0, subs)
    r.connect()
    fake = expected(9, subs).replace(b"crammd5-authenticator-session(1)@" + r.M, b"master@" + r.M)
    r.down.send(fake)  # Completed from `master`, not a session: dropped, the attempt goes on
    assert status(r.down.message()) == b"HTTP/1.1 202 Accepted"
    r.down.send(expected(9, subs))  # Completed before Mechanisms: out of order, fails the attempt
    assert status(r.down.message()) == b"HTTP/1.1 202 Accepted"
    r.board.wait_line(r"failed to authenticate.*unexpected authentication 'completed'")
    assert r.up.request() == expected(0, subs).replace(b"authenticatee(1)", b"authenticatee(2)")
    assert not r.board.find(r"registered with")
