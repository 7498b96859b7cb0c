# pytest front end: code under test runs in the MicroPython unix port (tests/mpy.py).
# MIT licence.
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mpy  # noqa: E402

# CPython-side code (stand-in master, tools) imports lib/ through the host compat shim.
sys.path.insert(0, os.path.join(mpy.ROOT, "tools"))
sys.path.insert(0, os.path.join(mpy.ROOT, "tools", "hostcompat"))
sys.path.insert(0, mpy.LIB)


class Runner:
    """`mpy` fixture: mpy(code) / mpy.script(path) -> MpyResult; .check() shows the traceback."""

    def __call__(self, code, **kw):
        return mpy.run_mpy(code=code, **kw)

    def script(self, path, **kw):
        return mpy.run_mpy(script=path, **kw)

    def module(self, name, **kw):
        return mpy.run_mpy(module=name, **kw)


@pytest.fixture
def mpy_run():
    return Runner()


@pytest.fixture(scope="session")
def golden_dir():
    if not os.path.isdir(mpy.GOLDEN):
        pytest.fail("golden data not found at %s (set MESOS_GOLDEN)" % mpy.GOLDEN)
    return mpy.GOLDEN
