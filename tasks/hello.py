# Example task: greets the framework (a framework message and a TASK_RUNNING update with data), then ends.
# MIT licence. Run it with CommandInfo.value "hello"; arguments are echoed back.
import asyncio


async def main(ctx):
    who = " ".join(ctx.arguments) or "world"
    ctx.log("hello", who, "from", ctx.task_id)
    ctx.update(("hello " + who).encode())
    ctx.send(("hello from " + ctx.task_id).encode())
    await asyncio.sleep_ms(int(ctx.env.get("LINGER_MS", "0")))
