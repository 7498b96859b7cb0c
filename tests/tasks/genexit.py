# Fault task: raises GeneratorExit from a step (asyncio's loop catches only Exception). MIT licence.
import asyncio


async def main(ctx):
    await asyncio.sleep_ms(int(ctx.env.get("DELAY_MS", "10")))
    raise GeneratorExit
