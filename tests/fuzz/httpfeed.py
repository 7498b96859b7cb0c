# The HTTP parser's buffer filled as the listener fills it (HTTPParser has no copy-in method: the listener
# reads into recv_view()). MIT licence. Imported by fuzz_http.py (MicroPython) and read by tests/test_http.py.


def feed(p, data, start=0, end=-1):
    # What the listener does with a socket read: copy into p.recv_view(), then p.received(n). -> n copied
    if end < 0:
        end = len(data)
    v = p.recv_view()
    n = min(end - start, len(v))
    if n <= 0:
        return 0
    v[:n] = memoryview(data)[start:start + n]
    p.received(n)
    return n
