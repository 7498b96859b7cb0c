# Attack task: starts normally, then never yields the event loop again. MIT licence.
import asyncio


async def main(ctx):
    await asyncio.sleep_ms(50)
    while True:
        pass
