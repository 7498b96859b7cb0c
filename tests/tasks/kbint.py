# Fault task: raises KeyboardInterrupt from a step (a task must not stop the agent). MIT licence.
import asyncio


async def main(ctx):
    await asyncio.sleep_ms(int(ctx.env.get("DELAY_MS", "10")))
    raise KeyboardInterrupt
