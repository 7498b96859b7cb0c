# Attack task: raises GeneratorExit out of main (what asyncio uses to close a coroutine). MIT licence.
async def main(ctx):
    raise GeneratorExit
