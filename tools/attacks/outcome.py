# What one attack case observed: named checks (each passes or fails on an observation), notes, and the
# event window its pong count covers. MIT licence.


class Outcome:
    def __init__(self):
        self.checks = []  # (ok, what)
        self.notes = []
        self.window = None  # (first, end) master event indexes pongs are counted over; None: the whole case

    def check(self, ok, what):
        self.checks.append((bool(ok), what))
        return bool(ok)

    def note(self, text):
        self.notes.append(text)

    def failed(self):
        return [what for ok, what in self.checks if not ok]
