# Example task: a temperature logger sending compact JSON readings ({"t":21.75,"n":3}) with ctx.send.
# MIT licence. Needs a granted temperature sensor; INTERVAL_MS or --interval=<s>; --count=<n> stops after n;
# a framework message "interval=<ms>" changes the interval while it runs.
import asyncio


def _arg(args, key, default):
    for a in args:
        if a.startswith(key):
            return a[len(key):]
    return default


async def main(ctx):
    sensor = ctx.sensor("temperature")
    interval = int(ctx.env.get("INTERVAL_MS", "5000"))
    s = _arg(ctx.arguments, "--interval=", None)
    if s is not None:
        interval = int(float(s) * 1000)
    count = int(_arg(ctx.arguments, "--count=", "0"))
    n = 0
    while not count or n < count:
        n += 1
        ctx.send(('{"t":%.2f,"n":%d}' % (sensor.read(), n)).encode())
        if count and n >= count:
            break
        try:
            msg = await asyncio.wait_for_ms(ctx.recv(), interval)
        except asyncio.TimeoutError:
            continue
        if msg.startswith(b"interval="):
            interval = int(msg[9:])
            ctx.log("interval now", interval, "ms")
    ctx.log("sent", n, "readings")
