# Attack task: clears its own module's globals (main included) and returns. MIT licence.
async def main(ctx):
    globals().clear()
