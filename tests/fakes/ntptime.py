# Host fake of `ntptime`: counts settime() calls; `fail` makes them raise like a timeout would.
# MIT licence. tests/fakes is on MICROPYPATH only when testing; never shipped to a board.
host = "pool.ntp.org"
timeout = 1
calls = 0
fail = 0  # number of calls that raise OSError(ETIMEDOUT) first
hosts = []  # the host each settime() asked


def settime():
    global calls, fail
    calls += 1
    hosts.append(host)
    if fail > 0:
        fail -= 1
        raise OSError(110)
