# Attack task: fills the heap from a module global until MemoryError, then holds it until killed.
# MIT licence. Only the task's end (or the module leaving sys.modules) can give the memory back.
import asyncio

HOG = []


async def main(ctx):
    try:
        while True:
            HOG.append(bytearray(1024))
    except MemoryError:
        pass
    while True:
        await asyncio.sleep_ms(200)
