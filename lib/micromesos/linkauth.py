# Keyed link frames (docs/LINK.md §8): a long-term key per node, in the node's config and the gateway's; a key
# per session from both ends' fresh nonces; every datagram tagged (the first 8 bytes of HMAC-SHA256), every
# frame of a session counted, so that a frame of another session, a changed one or one seen before is dropped
# and counted. MIT licence. Imported only when a key is configured; the gateway's side is mgateway.hub's.
import hashlib

from micropython import const

from .linkframe import put_u32, u32

TAG = const(8)  # tag bytes at the end of every keyed datagram
CTR = const(4)  # u32 frame counter before the tag, on every frame of a session
TRAILER = const(12)  # CTR + TAG: a transport's datagram is a session frame + this (the link's mtu is less)
GNONCE = const(8)  # the gateway's nonce after a keyed WELCOME's 20 bytes
WELCOME_LEN = const(36)  # a keyed WELCOME datagram: 20 + GNONCE + TAG
FORGED = const(-1)  # Session.open(): no tag, a wrong one, or too short
REPLAY = const(-2)  # Session.open(): tagged right, but its counter was seen (or is too old)
_BLOCK = const(64)  # SHA-256's block
_WINDOW = const(16)  # counters behind the highest seen that may still come once (reordered): a small int
_VT_HELLO = const(0x11)
_VT_WELCOME = const(0x12)
NODE = b"\x01"  # the direction byte hashed first: node -> gateway
GATEWAY = b"\x02"  # gateway -> node (a frame reflected back to its sender fails its tag)


def _ignore(*frame):
    return None  # no owner yet


def key_bytes(s):
    """The key from its config form (hex, 16..64 bytes), or None."""
    if not isinstance(s, str) or len(s) % 2 or not 32 <= len(s) <= 128:
        return None
    try:
        return bytes(int(s[i : i + 2], 16) for i in range(0, len(s), 2))
    except ValueError:
        return None


class Key:
    """HMAC-SHA256 (RFC 2104) with one key, its padded blocks made once; MicroPython has no hmac module."""

    def __init__(self, key):
        ipad = bytearray(_BLOCK)
        opad = bytearray(_BLOCK)
        for i in range(len(key)):
            ipad[i] = key[i]
            opad[i] = key[i]
        for i in range(_BLOCK):
            ipad[i] ^= 0x36
            opad[i] ^= 0x5C
        self.ipad = bytes(ipad)
        self.opad = bytes(opad)

    def mac(self, d, frame, n):
        """HMAC-SHA256(key, d + frame[:n]), all 32 bytes. d: the direction byte (NODE, GATEWAY) or b""."""
        h = hashlib.sha256(self.ipad)
        h.update(d)
        h.update(memoryview(frame)[:n])
        inner = h.digest()
        h = hashlib.sha256(self.opad)
        h.update(inner)
        return h.digest()

    def tag(self, d, frame, n):
        """The TAG bytes for d + frame[:n]."""
        return self.mac(d, frame, n)[:TAG]

    def check(self, d, buf, n):
        """True if buf[:n] ends with the tag of d + the bytes before it."""
        if n <= TAG:
            return False
        t = self.mac(d, buf, n - TAG)
        x = 0
        for i in range(TAG):  # every byte compared, whatever the first difference
            x |= t[i] ^ buf[n - TAG + i]
        return x == 0


class Session:
    """One session's key and frame counters, one end's view (LINK.md §8.3): seal() numbers and tags what goes
    out, open() checks what comes in. out, inn: the direction bytes (NODE, GATEWAY) of the two ways."""

    def __init__(self, raw, out, inn, tx=0, top=0):
        self.raw = raw  # the 32 key bytes (a node keeps them across a deep sleep)
        self.key = Key(raw)
        self.out = out
        self.inn = inn
        self.tx = tx  # the last counter sent
        self.top = top  # the highest counter received
        self.seen = 1  # bit i: counter top - i was received (bit 0: top itself; counter 0 is never valid)

    def seal(self, buf, n):
        """buf[:n] is a frame: its counter and tag are written after it; the datagram's length."""
        self.tx += 1
        put_u32(buf, n, self.tx)
        n += CTR
        t = self.key.mac(self.out, buf, n)
        for i in range(TAG):  # copied byte by byte: a slice of the digest would be one more allocation
            buf[n + i] = t[i]
        return n + TAG

    def open(self, buf, n):
        """buf[:n] is a datagram: the length of the frame in it, or FORGED or REPLAY (counter seen before, or
        more than 16 behind the highest: an old frame; the link sends a lost one again under a new counter)."""
        m = n - TRAILER
        if m < 8 or not self.key.check(self.inn, buf, n):
            return FORGED
        c = u32(buf, m)
        d = c - self.top
        if d > 0:
            self.seen = (self.seen << d | 1) & 0xFFFF if d < _WINDOW else 1
            self.top = c
            return m
        d = -d
        if d >= _WINDOW or self.seen >> d & 1:
            return REPLAY
        self.seen |= 1 << d
        return m


def session_key(key, nonce, attempt, gnonce, session):
    """The session key (32 bytes, LINK.md §8.2): HMAC-SHA256(long-term key, "micromesos link" ‖ nonce u32 ‖
    attempt u16 ‖ gnonce (8 bytes) ‖ session u8). key: a Key."""
    b = bytearray(30)
    b[0:15] = b"micromesos link"
    put_u32(b, 15, nonce)
    b[19] = attempt >> 8 & 255
    b[20] = attempt & 255
    b[21:29] = gnonce
    b[29] = session
    return key.mac(b"", b, 30)


def open_welcome(key, hello, buf, n):
    """A keyed WELCOME (buf[:n], 36 bytes, LINK.md §8.3) for the HELLO in hello (its first 12 bytes or more): a
    node's Session if it echoes that HELLO's nonce and attempt and carries the tag of the session key
    they, the gateway's nonce and the session number make; else None."""
    if n != WELCOME_LEN or buf[0] != _VT_WELCOME:
        return None
    for i in (4, 5, 8, 9, 10, 11):  # the attempt (seq) and the nonce, echoed
        if buf[i] != hello[i]:
            return None
    raw = session_key(key, u32(hello, 8), hello[4] << 8 | hello[5], memoryview(buf)[20:28], buf[2])
    s = Session(raw, NODE, GATEWAY)
    return s if s.key.check(GATEWAY, buf, n) else None


class Sealed:
    """A node's transport (linkudp.UDPNode's surface) with keyed datagrams: send(frame) adds what the frame
    needs (HELLO: a tag under the long-term key; the rest: counter and tag under the session key), on_frame(buf,
    n) gets only frames that pass, without it. The session key comes with the WELCOME for our last HELLO.
    mtu: what the link may send. s: the session (kept across a deep sleep by linkhello.kept, LINK.md §7.2)."""

    def __init__(self, transport, key):
        self.t = transport
        self.key = key  # the long-term Key
        self.mtu = transport.mtu - TRAILER
        self.s = None  # this session's Session
        self.hello = bytearray(12)  # the last HELLO's header and nonce: what its WELCOME must echo
        self.buf = bytearray(transport.mtu)  # every datagram is put together here (no allocation per frame)
        self.on_frame = _ignore
        self.forged = 0  # datagrams dropped: no tag, a wrong one (another session's), or a frame without a session
        self.replays = 0  # tagged right but seen before
        transport.on_frame = self._frame

    def _frame(self, buf, n):
        if n == WELCOME_LEN and buf[0] == _VT_WELCOME:
            if self.hello[0] != _VT_HELLO:
                self.replays += 1  # one taken already, or no HELLO sent: a repeat, or a replay
                return
            s = open_welcome(self.key, self.hello, buf, n)
            if s is None:
                self.forged += 1
                return
            self.s = s
            self.hello[0] = 0  # only the first WELCOME per attempt (LINK.md §3.2)
            self.on_frame(buf, 20)
            return
        s = self.s
        m = s.open(buf, n) if s is not None else FORGED
        if m >= 0:
            self.on_frame(buf, m)
        elif m == REPLAY:
            self.replays += 1
        else:
            self.forged += 1

    def send(self, frame):
        n = len(frame)
        b = self.buf
        b[0:n] = frame
        if b[0] == _VT_HELLO:
            self.hello[0:12] = b[0:12]
            n += TAG
            b[n - TAG : n] = self.key.tag(NODE, b, n - TAG)
        elif self.s is None:
            self.forged += 1  # no session key (a resume without one): nothing could take it
            return
        else:
            n = self.s.seal(b, n)
        self.t.send(memoryview(b)[:n])

    @property
    def after_batch(self):
        return self.t.after_batch

    @after_batch.setter
    def after_batch(self, fn):
        self.t.after_batch = fn

    def run(self):
        return self.t.run()

    def close(self):
        self.t.close()
