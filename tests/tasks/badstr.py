# Fault task: fails with an exception whose __str__ itself raises. MIT licence.
class Weird(Exception):
    def __str__(self):
        raise RuntimeError("no text for you")


async def main(ctx):
    raise Weird(1, 2)
