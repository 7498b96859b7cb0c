# Fault task: fails with an exception message of SIZE characters (default 8192). MIT licence.
async def main(ctx):
    raise ValueError("x" * int(ctx.env.get("SIZE", "8192")))
