# Fault task: holds the event loop for BUSY_MS (default 1000) without awaiting, then awaits forever.
# MIT licence. The fairness watchdog fails it (REASON_CONTAINER_LIMITATION) once it yields.
import asyncio
import time


async def main(ctx):
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < int(ctx.env.get("BUSY_MS", "1000")):
        pass
    await asyncio.sleep(3600)
