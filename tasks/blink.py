# Example task: blinks a granted LED (led:{led0}) or, failing that, a granted GPIO (gpio:[n-n], env PIN=n).
# MIT licence. PERIOD_MS (default 500) per on/off cycle; --count=<n> blinks n times, else until killed.
import asyncio

from micromesos.ctx import NotGranted


async def main(ctx):
    try:
        led = ctx.actuator("led")
    except NotGranted:
        led = ctx.pin(int(ctx.env.get("PIN", "2")))
        led.init(led.OUT)
    half = int(ctx.env.get("PERIOD_MS", "500")) // 2
    count = 0
    for a in ctx.arguments:
        if a.startswith("--count="):
            count = int(a[8:])
    n = 0
    try:
        while not count or n < count:
            led.value(1)
            await asyncio.sleep_ms(half)
            led.value(0)
            await asyncio.sleep_ms(half)
            n += 1
    finally:
        led.value(0)  # killed or not: leave it dark
        ctx.log("blinked", n, "times")
