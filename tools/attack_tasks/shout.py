# Attack task: fails with a 3.9 KB exception message. MIT licence.
async def main(ctx):
    raise RuntimeError("x" * 3900)
