# Attack task: raises KeyboardInterrupt, which a board's REPL would take as Ctrl-C. MIT licence.
async def main(ctx):
    raise KeyboardInterrupt
