# Fault task: holds every 1 KB block it can get until the heap is exhausted (MemoryError). MIT licence.
import asyncio

keep = []  # module globals: freed only when the module leaves sys.modules


async def main(ctx):
    while True:
        keep.append(bytearray(int(ctx.env.get("BLOCK", "1024"))))
        if len(keep) % 8 == 0:
            await asyncio.sleep_ms(0)
