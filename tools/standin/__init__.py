# The loopback stand-in Mesos 1.12 master (CPython, asyncio, stdlib + the project codec): a test and demo fixture.
# MIT licence. Import StandinMaster from here; tools/standin_master.py is the command line.
from .events import CRASH, DROPPED, ERROR, INFO, PROBLEMS, RECV, REFUSED, SEND, WARN, Event
from .master import Observer, StandinMaster
from .ops import Refused

__all__ = ["StandinMaster", "Observer", "Event", "Refused", "CRASH", "DROPPED", "ERROR", "INFO", "PROBLEMS",
           "RECV", "REFUSED", "SEND", "WARN"]
