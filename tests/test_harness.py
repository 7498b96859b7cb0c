# The harness itself: the interpreter is the pinned MicroPython, heap is bounded, tracebacks surface.


def test_runs_micropython_with_device_heap(mpy_run):
    r = mpy_run("import sys, gc; gc.collect(); print(sys.implementation.name, gc.mem_free() + gc.mem_alloc())").check()
    name, heap = r.out.split()
    assert name == "micropython"
    assert int(heap) <= 140 * 1024  # -X heapsize applied, not the unix port's default 1 MB+


def test_failure_shows_micropython_traceback(mpy_run):
    r = mpy_run("import micromesos.errors as e\nraise e.DecodeError('truncated varint')")
    assert r.rc == 1
    # This unix-port build prints uncaught tracebacks on stdout.
    assert "DecodeError: truncated varint" in r.out + r.err
