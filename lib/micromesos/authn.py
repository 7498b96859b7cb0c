# SASL CRAM-MD5 agent authentication, the authenticatee side (src/authentication/cram_md5/authenticatee.cpp,
# Slave::authenticate in src/slave/slave.cpp; bytes: golden/captured/auth/). MIT licence. Imported by
# Agent._authenticate only when a credential is configured, and dropped once the agent is authenticated.
#
# One attempt = one process crammd5-authenticatee(N)@<agent ip:port> (Libprocess.second):
#   -> master                 AuthenticateMessage {pid: slave(1)@...}
#   <- authenticator-session  AuthenticationMechanismsMessage {mechanisms}   (on the master's own connection)
#   -> session                AuthenticationStartMessage {mechanism: "CRAM-MD5", data: ""}
#   <- session                AuthenticationStepMessage {data: challenge}
#   -> session                AuthenticationStepMessage {data: "principal hex(HMAC-MD5(secret, challenge))"}
#   <- session                AuthenticationCompletedMessage | AuthenticationFailedMessage
# The real agent exits on Failed; a board backs off and tries again (a reboot loop helps nobody).
import json
import random
import time

import asyncio
from micropython import const

from . import log
from .errors import ConfigError, DecodeError
from .wire import Reader

_W = "authn"
_MECHANISM = b"CRAM-MD5"
_SESSION = b"crammd5-authenticator-session("
_PREFIX = b"mesos.internal."
# Bodies and fields (include/mesos/authentication/authentication.proto): every field the exchange uses
# is number 1 or 2, length-delimited. Keys: (1 << 3) | 2 = 0x0a, (2 << 3) | 2 = 0x12.
_START = b"\x0a\x08CRAM-MD5\x12\x00"  # data present and empty: set_data(output, 0) (capture #3)
_MAX_CRED = const(256)  # bytes of a principal or secret: the file is read whole into the heap

# Attempt outcomes.
_DONE = const(1)
_REFUSED = const(2)
_FAILED = const(3)  # a protocol error or a timeout: retried with a longer timeout, as the real agent
_DISCONNECTED = const(1)  # agent.DISCONNECTED

# Messages to the authenticatee, by the name after mesos.internal.
_MECHANISMS = b"AuthenticationMechanismsMessage"
_STEP = b"AuthenticationStepMessage"
_COMPLETED = b"AuthenticationCompletedMessage"
_FAILED_MSG = b"AuthenticationFailedMessage"
_ERROR = b"AuthenticationErrorMessage"


def read_credential(path):
    """(principal, secret) as bytes from a `mesos-agent --credential` JSON file
    {"principal": "...", "secret": "..."}. ConfigError names the file and key, never the secret."""
    try:
        with open(path) as f:
            raw = f.read(4 * _MAX_CRED)
        c = json.loads(raw)
    except OSError:
        raise ConfigError('%s: cannot read the credential file (needs {"principal": "...", "secret": "..."})'
                          % path)
    except ValueError:
        raise ConfigError("%s: not valid JSON" % path)
    if not isinstance(c, dict):
        raise ConfigError("%s: expected a JSON object" % path)
    out = []
    for k in ("principal", "secret"):
        v = c.get(k)
        if not isinstance(v, str) or not 0 < len(v) <= _MAX_CRED:
            raise ConfigError("%s: expected a non-empty string in %s" % (k, path))
        out.append(v.encode())
    if b" " in out[0]:  # CRAM-MD5's response is "principal SP digest": the master splits at the last space
        raise ConfigError("principal: must not contain a space (%s)" % path)
    return out[0], out[1]


# --- HMAC-MD5 (RFC 2104) by hand: MicroPython has no hmac module --------------------------------------

def _md5():
    try:
        import hashlib

        if hasattr(hashlib, "md5"):
            return lambda d: hashlib.md5(d).digest()
    except ImportError:
        pass
    from . import md5  # a port built without MICROPY_PY_HASHLIB_MD5 (the 32-bit device model, some rp2)

    return md5.digest


def hmac_md5(key, msg, md5=None):
    """HMAC-MD5(key, msg) as 16 bytes: md5((K ^ opad) + md5((K ^ ipad) + msg)), 64-byte blocks."""
    md5 = md5 or _md5()
    if len(key) > 64:
        key = md5(key)
    ipad = bytearray(64 + len(msg))
    opad = bytearray(64 + 16)
    for i in range(64):
        c = key[i] if i < len(key) else 0
        ipad[i] = c ^ 0x36
        opad[i] = c ^ 0x5C
    ipad[64:] = msg
    opad[64:] = md5(ipad)
    return md5(opad)


def response(principal, secret, challenge, md5=None):
    """The CRAM-MD5 answer to `challenge` (opaque bytes): principal SP lowercase-hex digest (RFC 2195)."""
    d = hmac_md5(secret, challenge, md5)
    out = bytearray(principal)
    out.append(32)
    for c in d:
        out.extend(b"%02x" % c)
    return bytes(out)


def _field(num, value):
    # One length-delimited field (value shorter than 16 KB: a 1- or 2-byte length).
    n = len(value)
    if n < 128:
        return bytes(((num << 3) | 2, n)) + value
    return bytes(((num << 3) | 2, (n & 0x7F) | 0x80, n >> 7)) + value


def _fields(buf, start, end, num):
    """The values of length-delimited field `num` in buf[start:end], as bytes; DecodeError if malformed."""
    r = Reader()
    r.reset(buf, start, end)
    out = []
    while True:
        f = r.next()
        if not f:
            return out
        if f == num and r.wt == 2:
            e = r.lendelim()
            out.append(bytes(buf[r.pos:e]))
            r.pos = e
        else:
            r.skip()


class Attempt:
    """One authentication attempt: the process crammd5-authenticatee(n) while it lives."""

    def __init__(self, agent, n, principal, secret):
        self.a = agent
        self.lp = agent.lp
        self.id = b"crammd5-authenticatee(%d)" % n
        ap = agent.upid.partition("@")[2]
        self.upid = "%s@%s" % (self.id.decode(), ap)
        self.mid = self.lp.mid(self.upid)
        self.principal = principal
        self.secret = secret
        self.session = None  # the authenticator session that sent Mechanisms: the only one answered
        self.stepping = False
        self.outcome = 0
        self.why = ""
        self.done = asyncio.Event()
        master = agent.master
        self.master_host = master.partition("@")[2]
        self.master_ip = self.master_host.rpartition(":")[0]

    def start(self):
        """Send AuthenticateMessage {pid: slave(1)@...} to the master. False if it could not be queued."""
        self.lp.second = (self.id, self._on_message)
        return self.lp.send(self.a.master, _PREFIX + b"AuthenticateMessage", _field(1, self.a.upid.encode()),
                            self.mid)

    def close(self):
        """The process is gone: its messages are answered 404 from now on (capture, scenario 16)."""
        if self.lp.second is not None and self.lp.second[0] == self.id:
            self.lp.second = None
        self.secret = None

    def _end(self, outcome, why=""):
        if not self.outcome:
            self.outcome = outcome
            self.why = why
            self.done.set()

    def _reply(self, name, body):
        if not self.lp.send(self.session, _PREFIX + name, body, self.mid):
            self._end(_FAILED, "could not queue %s" % name.decode())

    def _on_message(self, msg):
        # Only the master's host may talk to the authenticatee, and only from an authenticator session;
        # after Mechanisms only from that same session (the real one keeps no `from`: a TODO there).
        s = msg.sender()
        c = msg.conn
        if (self.outcome or not msg.sender_id_startswith(_SESSION) or not msg.sender_host_is(self.a.master)
                or (self.a.cfg["check_master_ip"] and c is not None and c.peer[0] != self.master_ip)
                or (self.session is not None and s != self.session)):
            log.warn(_W, "dropped %s from %s: not the master's authenticator session", msg.name(), s)
            return
        name = msg.name().encode()
        if not name.startswith(_PREFIX):
            log.warn(_W, "dropped %s from %s: unknown message", msg.name(), s)
            return
        name = name[len(_PREFIX):]
        try:
            if name == _MECHANISMS:
                if self.session is not None:
                    self._end(_FAILED, "unexpected authentication 'mechanisms' received")
                    return
                self.session = s
                mechs = _fields(msg.buf, msg.start, msg.end, 1)
                log.info(_W, "received SASL authentication mechanisms: %s", b",".join(mechs).decode())
                if _MECHANISM not in mechs:
                    self._end(_FAILED, "the master offers no CRAM-MD5")
                    return
                self.stepping = True
                self._reply(b"AuthenticationStartMessage", _START)
            elif name == _STEP:
                if not self.stepping:
                    self._end(_FAILED, "unexpected authentication 'step' received")
                    return
                data = _fields(msg.buf, msg.start, msg.end, 1)
                if not data:
                    self._end(_FAILED, "authentication step without data")
                    return
                self._reply(_STEP, _field(1, response(self.principal, self.secret, data[-1])))
            elif name == _COMPLETED:
                if not self.stepping:
                    self._end(_FAILED, "unexpected authentication 'completed' received")
                    return
                self._end(_DONE)
            elif name == _FAILED_MSG:
                self._end(_REFUSED)
            elif name == _ERROR:
                err = _fields(msg.buf, msg.start, msg.end, 1)
                self._end(_FAILED, "authentication error: %s" % (err[-1].decode() if err else ""))
            else:
                log.warn(_W, "dropped %s from %s: not an authentication message", msg.name(), s)
        except (DecodeError, UnicodeError) as e:
            self._end(_FAILED, "bad %s: %s" % (name.decode(), e))
        except MemoryError:  # the next attempt may find more heap: no need to wait out the timeout
            self._end(_FAILED, "out of memory in the %s step" % name.decode())


def _uniform(lo, hi):
    return lo + (hi - lo) * random.random()


def wanted(agent):
    """Does the agent need to authenticate now (Slave::detected): disconnected, with a credential, not yet?"""
    return agent.state == _DISCONNECTED and not agent.authenticated and bool(agent.cfg["credential"])


def credential_path(agent):
    """The credential file (config key credential), under the board's fs root unless absolute."""
    p = agent.cfg["credential"]
    if p.startswith("/"):
        return p
    fs = agent.inv.fs.rstrip("/")
    return (fs + "/" if fs else "") + p


async def run(agent):
    """Authenticate with agent.master until it completes (Slave::authenticate/_authenticate): attempt n
    times out after a random [min, min + factor * 2^n] s (capped at max) and the next attempt is a new
    authenticatee; a refusal (wrong secret, unknown principal) is logged and retried after a backoff
    that grows to authentication_timeout_max. Returns True once authenticated, False if the agent
    stopped needing it (registered by other means, or terminating)."""
    cfg = agent.cfg
    lo = cfg["authentication_timeout_min"]
    top = cfg["authentication_timeout_max"]
    hi = min(lo + cfg["authentication_backoff_factor"] * 2, top)
    refusals = 0
    while wanted(agent):
        try:
            principal, secret = read_credential(credential_path(agent))
        except ConfigError as e:
            refusals += 1
            wait = min(lo * (1 << min(refusals - 1, 10)), top)
            log.error(_W, "%s: retrying in %d s", e, wait)
            await asyncio.sleep(wait)
            continue
        agent.authentications += 1
        att = Attempt(agent, agent.authentications, principal, secret)
        del secret
        log.info(_W, "authenticating with master %s as %s (%s)", agent.master, principal.decode(), att.upid)
        timeout = _uniform(lo, hi)
        t0 = time.ticks_ms()
        if att.start():
            try:
                await asyncio.wait_for(att.done.wait(), timeout)
            except asyncio.TimeoutError:
                att.why = "authentication timed out after %.1f s" % timeout
        else:
            att.why = "could not queue AuthenticateMessage"
            await asyncio.sleep(timeout)
        att.close()
        if att.outcome == _DONE:
            log.info(_W, "successfully authenticated with master %s", agent.master)
            return True
        if att.outcome == _REFUSED:
            refusals += 1
            wait = _uniform(0.5, 1.0) * min(lo * (1 << min(refusals - 1, 10)), top)
            # The real agent exits here ("refused authentication"); a board keeps its tasks and retries.
            log.error(_W, "master %s refused authentication as %s (wrong secret or unknown principal?): "
                      "retrying in %.1f s", agent.master, principal.decode(), wait)
            await asyncio.sleep(wait)
            hi = min(lo + cfg["authentication_backoff_factor"] * 2, top)
            continue
        log.warn(_W, "failed to authenticate with master %s: %s", agent.master, att.why)
        # A failed attempt (not a timeout) waits out its timeout before the next: no tight loop of
        # attempts when, say, the heap is short (the real agent retries at once).
        left = timeout - time.ticks_diff(time.ticks_ms(), t0) / 1000
        if left > 0:
            await asyncio.sleep(left)
        hi = min(lo + (hi - lo) * 2, top)
    return False
