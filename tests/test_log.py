# micromesos.log's line limit (config log_rate), run in the MicroPython unix port with a clock the test moves,
# so that nothing depends on how fast this machine runs. MIT licence.
import json

CODE = r"""
import json
from micromesos import log

class Clock:  # time as log uses it: ticks_ms() and ticks_diff() (wrapping ticks: the test sets them)
    now = 1000
    def ticks_ms(self):
        return self.now
    def ticks_diff(self, a, b):
        return a - b

clock = log.time = Clock()
out = {}

log.set_level("info", 5)          # 5 lines a second, 10 at once
for i in range(30):
    log.warn("t", "flood %d", i)   # all at the same instant
out["after_flood"] = log.dropped
clock.now += 1000                  # a second: room for 5 more
log.warn("t", "after a second")
for i in range(10):
    log.info("t", "more %d", i)
out["after_second"] = log.dropped
clock.now -= 500000                # the clock seen going back (ticks wrapped after days without a line)
log.error("t", "after the wrap")
log.set_level("info")             # no limit
for i in range(50):
    log.info("t", "unlimited %d", i)
log.set_level("error", 1)
for i in range(5):
    log.info("t", "below the level %d", i)  # not lines at all: neither shown nor counted
out["end"] = log.dropped
log.set_level("info", 5)           # room for 10 lines again
log.info("t", "%s", "x" * 450)     # counts as 5: one per 100 characters
for i in range(6):
    log.info("t", "short %d", i)   # 5 of them fit
out["long"] = log.dropped
print("OUT " + json.dumps(out))
"""


def test_at_most_log_rate_lines_a_second_and_the_next_one_says_how_many_were_not(mpy_run):
    r = mpy_run(CODE).check()
    lines = r.out.splitlines()
    out = json.loads(lines[-1][4:])
    shown = [ln.split(" ", 1)[1] for ln in lines[:-1]]
    # The burst: twice the rate at once, then nothing until time passes; every line counted.
    assert shown[:10] == ["WARN t: flood %d" % i for i in range(10)], shown
    assert out["after_flood"] == 20
    # A second later: the count first, then that line and 4 more (5 a second); the other 6 counted.
    assert shown[10:16] == ["WARN log: 20 lines not shown (more than 5 a second)", "WARN t: after a second"] + [
        "INFO t: more %d" % i for i in range(4)], shown[10:20]
    assert out["after_second"] == 26
    # A clock seen going back refills the room instead of emptying it for days.
    assert shown[16:18] == ["WARN log: 6 lines not shown (more than 5 a second)", "ERROR t: after the wrap"]
    # No limit: every line; lines below the level are not counted.
    assert shown[18:68] == ["INFO t: unlimited %d" % i for i in range(50)], shown[18:]
    assert out["end"] == 26
    # A long line costs what several short ones do (the console's time is per character).
    assert shown[68:] == ["INFO t: " + "x" * 450] + ["INFO t: short %d" % i for i in range(5)], shown[68:]
    assert out["long"] == 27
