# Frame authentication for the node<->gateway link (docs/LINK.md §8): a key per node, in the node's config and
# the gateway's; every frame goes with the first 8 bytes of HMAC-SHA256(key, frame) after it, and a frame
# whose tag does not match is dropped and counted. MIT licence. Imported only when a key is configured.
import hashlib

from micropython import const

TAG = const(8)  # bytes of tag after each frame: a transport's datagrams are the link's frames + TAG
_BLOCK = const(64)  # SHA-256's block


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

    def tag(self, frame, n):
        """The TAG bytes for frame[:n]."""
        h = hashlib.sha256(self.ipad)
        h.update(memoryview(frame)[:n])
        inner = h.digest()
        h = hashlib.sha256(self.opad)
        h.update(inner)
        return h.digest()[:TAG]

    def check(self, buf, n):
        """True if buf[:n] is a frame followed by its tag."""
        if n <= TAG:
            return False
        t = self.tag(buf, n - TAG)
        d = 0
        for i in range(TAG):  # every byte compared, whatever the first difference
            d |= t[i] ^ buf[n - TAG + i]
        return d == 0


class Sealed:
    """A node's transport (linkudp.UDPNode's surface) whose frames carry tags: send(frame) adds one,
    on_frame(buf, n) gets only frames whose tag matches, without it. mtu: what the link may send."""

    def __init__(self, transport, key):
        self.t = transport
        self.key = key
        self.mtu = transport.mtu - TAG
        self.on_frame = _ignore
        self.forged = 0  # frames dropped: no tag, or a wrong one
        transport.on_frame = self._frame

    def _frame(self, buf, n):
        if self.key.check(buf, n):
            self.on_frame(buf, n - TAG)
        else:
            self.forged += 1

    def send(self, frame):
        self.t.send(bytes(frame) + self.key.tag(frame, len(frame)))

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


class SealedHub:
    """The gateway's transports (mgateway.udp.UDPHub's surface) with a key per node name: a HELLO is taken only
    with the tag of the key of the name it carries, then that address speaks with that key; frames from an
    address no verified HELLO came from are dropped, and nothing is sent to one (a RESET could not be tagged:
    the node, hearing nothing, says HELLO). keys: {name: Key}."""

    def __init__(self, hub, keys):
        self.t = hub
        self.keys = keys
        self.by_addr = {}  # addr -> Key, from the last HELLO verified there
        self.names = {}  # name -> its addr (one per node)
        self.on_frame = _ignore
        self.forged = 0
        hub.on_frame = self._frame

    def _frame(self, addr, buf, n):
        m = n - TAG
        if m > 25 and buf[0] & 15 == 1:  # HELLO: its name says which key (LINK.md §3.1)
            ln = buf[24]
            try:
                name = bytes(buf[25 : 25 + ln]).decode() if 25 + ln == m else None
            except UnicodeError:
                name = None
            k = self.keys.get(name) if name is not None else None
            if k is None or not k.check(buf, n):
                self.forged += 1
                return None
            old = self.names.get(name)
            if old is not None and old != addr:
                self.by_addr.pop(old, None)
            self.names[name] = addr
            self.by_addr[addr] = k
        else:
            k = self.by_addr.get(addr)
            if k is None or not k.check(buf, n):
                self.forged += 1
                return None
        return self.on_frame(addr, buf, m)

    def sender(self, addr):
        out = self.t.sender(addr)

        def sealed(frame):
            k = self.by_addr.get(addr)
            if k is not None:
                out(bytes(frame) + k.tag(frame, len(frame)))

        return sealed

    def run(self):
        return self.t.run()

    def close(self):
        self.t.close()
