# Fault task: wipes its own module's globals (main included), then ends. Later launches must still work.
# MIT licence.
import asyncio


async def main(ctx):
    sleep = asyncio.sleep_ms
    ctx.update(b"clearing")
    g = globals()
    for k in list(g):
        if not k.startswith("__"):
            del g[k]
    await sleep(0)
