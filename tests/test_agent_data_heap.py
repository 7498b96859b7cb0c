# The agent's data heap after registration on the 32-bit device model, both flavours (issue 9: <= 12 KB,
# module RAM excluded), measured as `make bench` does: tools/bench/agent_probe.py boots the agent against the
# stand-in master and reports the heap in use less the interpreter's own and less the RAM of the modules still
# resident (those imported alone in a fresh interpreter). MIT licence.
import asyncio
import os
import sys

import pytest

import mpy
from standin import StandinMaster

BUDGET = 12 * 1024  # bytes


def _probe(device):
    sys.path.insert(0, os.path.join(mpy.ROOT, "tools", "bench"))
    try:
        import bench_agent
    finally:
        sys.path.pop(0)

    async def main():
        async with StandinMaster(ping_interval=0.25) as m:
            return await bench_agent.probe(m.port, "384k", 1, device=device)
    return asyncio.run(main())[0]


@pytest.mark.parametrize("device", ("loaded", "frozen"))
def test_data_heap_after_registration_is_within_12_kb(device):
    f = _probe(device)
    assert f and f.get("state") == ["RUNNING"] and f.get("data"), f
    data = int(f["data"][0])  # at registration (the second figure: after the hold)
    print("%s model: data heap after registration %d B (code in RAM %s B)" % (device, data, f["code"][0]))
    # The loaded flavour holds more: a loaded .mpy's names are interned in the heap for good (qstrs), those of
    # the modules the agent drops after boot too (config, agentinit, registrar, boardres, resfmt).
    assert data <= BUDGET, "%s: %d B of data after registration, budget %d B" % (device, data, BUDGET)
