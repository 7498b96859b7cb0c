# CPython stand-in for the `micropython` module, so host tools can import lib/ code.
# MIT licence. Only on sys.path of CPython tools and tests, never shipped to a board.


def const(x):
    return x


def heap_lock():
    return 0


def heap_unlock():
    return 0
