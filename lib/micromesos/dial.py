# Outbound connections and socket options, the rare half of the transport's sockets (gate.py has the inbound
# half). MIT licence. Imported for a connect (libprocess._Dest, download.py) and gone after: connect() drops
# this module when it returns, so a loaded board holds its bytecode only while connecting.
import asyncio
import errno
import select
import socket
import sys
import time

from micromesos import drop


def nodelay_option(mod=socket, platform=sys.platform):
    """(level, option) that turns Nagle off, from the socket module's own constants (lwIP's
    TCP_NODELAY is not Linux's 1). A port whose module has none: the POSIX values on the unix
    port (it hands them to the OS as they are), else None (the option is not set)."""
    level = getattr(mod, "IPPROTO_TCP", None)
    opt = getattr(mod, "TCP_NODELAY", None)
    if level is not None and opt is not None:
        return level, opt
    if platform in ("linux", "darwin"):
        return 6, 1  # <netinet/tcp.h>
    return None


def sockaddr_in(ip, port):
    """The packed struct sockaddr_in the unix port's connect() takes (Linux: family in host byte order)."""
    fam = socket.AF_INET
    b = bytearray(16)
    b[0], b[1] = (fam & 0xFF, fam >> 8) if sys.byteorder == "little" else (fam >> 8, fam & 0xFF)
    b[2], b[3] = port >> 8, port & 0xFF
    b[4:8] = bytes(int(p) for p in ip.split("."))
    return bytes(b)


async def connect(addr, timeout_ms=None, poll_ms=10):
    """A non-blocking socket connected to addr: what socket.connect takes, or (ipv4 literal, port).
    The connect is waited for without holding the loop (polled: connecting is rare), so no byte is
    handed to a socket that never connects. OSError (ECONNREFUSED, ETIMEDOUT, ...) closes the socket;
    so does a cancellation (the caller's own timeout). This module leaves sys.modules when it returns."""
    s = socket.socket()
    ok = False
    try:
        s.setblocking(False)
        try:
            try:
                s.connect(addr)
            except TypeError:  # the unix port's connect() takes only the packed form
                s.connect(sockaddr_in(addr[0], addr[1]))
        except OSError as e:
            if e.errno != errno.EINPROGRESS:
                raise
        p = select.poll()
        p.register(s, select.POLLOUT)
        t0 = time.ticks_ms()
        while True:
            ev = p.poll(0)
            if ev:
                if ev[0][1] & (select.POLLERR | select.POLLHUP):
                    raise OSError(errno.ECONNREFUSED)
                break
            if timeout_ms is not None and time.ticks_diff(time.ticks_ms(), t0) > timeout_ms:
                raise OSError(errno.ETIMEDOUT)
            await asyncio.sleep_ms(poll_ms)
        p.unregister(s)
        ok = True
    finally:
        if not ok:
            s.close()
        drop("micromesos.dial")  # the caller's reference keeps the code until it is done
    return s
