# The stand-in master's --authenticate_agents: SASL CRAM-MD5 authenticator sessions, as Mesos 1.12 runs them
# (src/authentication/cram_md5/authenticator.cpp with Cyrus SASL; bytes: golden/captured/auth/). MIT licence.
#
# AuthenticateMessage {pid} to `master` starts crammd5-authenticator-session(N) (N from 1 per master process),
# which sends Mechanisms, takes Start, sends the challenge <R.T@hostname>, checks the step's
# "principal hex(HMAC-MD5(secret, challenge))" and answers Completed (the pid is authenticated) or Failed.
# The Authentication* types are not in the agent codec's schema: their one or two fields are coded here.
import asyncio
import hashlib
import hmac
import json
import random
import socket
import time

from . import lphttp
from .events import DROPPED, INFO, RECV, SEND, WARN

_PREFIX = "mesos.internal."
MECHANISM = b"CRAM-MD5"
SESSION = "crammd5-authenticator-session("
V0_TIMEOUT = 15.0  # the master's authentication_v0_timeout (src/master/constants.hpp)


def field(num, value):
    """One length-delimited protobuf field."""
    n = len(value)
    out = bytearray([(num << 3) | 2])
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out) + bytes(value)


def fields(body):
    """{field number: [bytes values]} of the length-delimited fields; ValueError if malformed."""
    out = {}
    i = 0
    body = bytes(body)
    while i < len(body):
        key, i = _varint(body, i)
        num, wt = key >> 3, key & 7
        if num == 0:
            raise ValueError("field number 0")
        if wt == 2:
            n, i = _varint(body, i)
            if i + n > len(body):
                raise ValueError("length past the end")
            out.setdefault(num, []).append(body[i:i + n])
            i += n
        elif wt == 0:
            _, i = _varint(body, i)
        elif wt in (1, 5):
            i += 8 if wt == 1 else 4
        else:
            raise ValueError("wire type %d" % wt)
    if i != len(body):
        raise ValueError("truncated")
    return out


def _varint(b, i):
    v = s = 0
    while True:
        if i >= len(b) or s > 63:
            raise ValueError("bad varint")
        c = b[i]
        i += 1
        v |= (c & 0x7F) << s
        s += 7
        if c < 0x80:
            return v, i


def load_credentials(src):
    """{principal: secret} from the master's --credentials JSON file (path) or an already loaded
    {"credentials": [{"principal", "secret"}]} / list of such entries."""
    if isinstance(src, str):
        with open(src) as f:
            src = json.load(f)
    if isinstance(src, dict):
        src = src.get("credentials", [])
    return {c["principal"]: c["secret"] for c in src}


def digest(secret, challenge):
    return hmac.new(secret.encode() if isinstance(secret, str) else secret, challenge, hashlib.md5).hexdigest()


class Session:
    def __init__(self, auth, n, authenticatee, pid):
        self.id = "%s%d)" % (SESSION, n)
        self.upid = "%s@%s" % (self.id, auth.m.upid.partition("@")[2])
        self.authenticatee = authenticatee  # where Mechanisms, Step and the outcome go
        self.pid = pid                     # the process authenticated on Completed (slave(1)@...)
        self.challenge = None
        self.timer = None


class Authenticator:
    """Mixed into StandinMaster through `m.auth` (None unless authenticate_agents)."""

    def __init__(self, master, credentials):
        self.m = master
        self.credentials = load_credentials(credentials)
        self.reset()

    def reset(self):
        """A new master process: sessions numbered from 1, nobody authenticated."""
        for s in getattr(self, "sessions", {}).values():
            if s.timer is not None:
                s.timer.cancel()
        self.sessions = {}       # session id -> Session
        self.by_pid = {}         # pid being authenticated -> session id
        self.authenticated = set()
        self.next = 1
        self.completed = 0
        self.failed = 0

    def is_receiver(self, rid):
        return rid in self.sessions

    def _send(self, s, name, body):
        m = self.m
        _, ip, port = lphttp.parse_upid(s.authenticatee)
        m.record(SEND, name=name, src=s.upid, dst=s.authenticatee, body=_view(name, body))
        m.links.send((ip, port), lphttp.message_request(s.upid, s.authenticatee, _PREFIX + name, body))

    def _end(self, s):
        self.sessions.pop(s.id, None)
        if self.by_pid.get(s.pid) == s.id:
            del self.by_pid[s.pid]
        if s.timer is not None:
            s.timer.cancel()
            s.timer = None

    def deliver(self, receiver, short, sender, body):
        """A message named Authentic* for `master` or a session. True if handled here."""
        m = self.m
        try:
            f = fields(body)
        except ValueError as e:
            m.record(DROPPED, name=short, src=sender, reason="undecodable %s body: %s" % (short, e))
            return True
        m.record(RECV, name=short, src=sender, dst=receiver, body=_view(short, body))
        if receiver == "master":
            if short != "AuthenticateMessage":
                m.record(DROPPED, name=short, src=sender, reason="master does not handle %s" % short)
                return True
            pid = f.get(1, [b""])[-1].decode("utf-8", "replace")
            try:
                lphttp.parse_upid(pid)
                lphttp.parse_upid(sender)
            except ValueError:
                m.record(DROPPED, name=short, src=sender, reason="AuthenticateMessage without a valid pid")
                return True
            old = self.by_pid.get(pid)
            if old is not None:
                m.record(INFO, reason="re-authenticating %s; discarding outstanding authentication" % pid)
                self._end(self.sessions[old])
            self.authenticated.discard(pid)
            s = Session(self, self.next, sender, pid)
            self.next += 1
            self.sessions[s.id] = s
            self.by_pid[pid] = s.id
            s.timer = asyncio.get_running_loop().call_later(V0_TIMEOUT, self._timeout, s)
            # One connection to the agent for the session and everything after it (conn1 in the capture).
            m.link(sender)
            self._send(s, "AuthenticationMechanismsMessage", field(1, MECHANISM))
            return True
        s = self.sessions[receiver]
        if sender != s.authenticatee:
            m.record(DROPPED, name=short, src=sender, reason="%s talks to %s only" % (s.id, s.authenticatee))
            return True
        if short == "AuthenticationStartMessage" and s.challenge is None:
            if f.get(1, [b""])[-1] != MECHANISM:
                self._send(s, "AuthenticationErrorMessage", field(1, b"Failed to start the SASL server"))
                self._end(s)
                return True
            # Cyrus SASL's challenge: <random.time%0xFFFFFF@gethostname()>
            s.challenge = ("<%d.%d@%s>" % (random.getrandbits(31), int(time.time()) % 0xFFFFFF,
                                           socket.gethostname())).encode()
            self._send(s, "AuthenticationStepMessage", field(1, s.challenge))
            return True
        if short == "AuthenticationStepMessage" and s.challenge is not None:
            data = f.get(1, [b""])[-1]
            principal, _, hexd = data.rpartition(b" ")
            secret = self.credentials.get(principal.decode("utf-8", "replace"))
            self._end(s)
            if secret is not None and hmac.compare_digest(digest(secret, s.challenge).encode(), hexd):
                self.authenticated.add(s.pid)
                self.completed += 1
                m.record(INFO, reason="authenticated %s as %s" % (s.pid, principal.decode("utf-8", "replace")))
                self._send(s, "AuthenticationCompletedMessage", b"")
            else:
                self.failed += 1
                m.record(INFO, reason="authentication failure for %s: %s" % (
                    s.pid, "user not found" if secret is None else "authentication failure"))
                self._send(s, "AuthenticationFailedMessage", b"")
            return True
        m.record(WARN, name=short, src=sender, reason="%s out of order in %s" % (short, s.id))
        return True

    def _timeout(self, s):
        if s.id in self.sessions:
            self.m.record(INFO, reason="authentication session %s for %s timed out" % (s.id, s.pid))
            self._end(s)


def _view(name, body):
    """The decoded body for events (the challenge and the response are shown: a test fixture's log)."""
    try:
        f = fields(body)
    except ValueError:
        return {"raw": bytes(body)}
    if name == "AuthenticateMessage":
        return {"pid": f.get(1, [b""])[-1].decode("utf-8", "replace")}
    if name == "AuthenticationMechanismsMessage":
        return {"mechanisms": [x.decode() for x in f.get(1, [])]}
    if name == "AuthenticationStartMessage":
        return {"mechanism": f.get(1, [b""])[-1].decode("utf-8", "replace"), "data": f.get(2, [b""])[-1]}
    if name == "AuthenticationStepMessage":
        return {"data": f.get(1, [b""])[-1]}
    if name == "AuthenticationErrorMessage":
        return {"error": f.get(1, [b""])[-1].decode("utf-8", "replace")}
    return {}
