# Scripted sleeping nodes for the gateway's tests and simulations (docs/GATEWAY.md §7). MIT licence.
# Runs in MicroPython (MICROPYPATH=.frozen:lib):
#   micropython tools/gateway_nodes.py GATEWAY_IP LINK_PORT NAME W_MS A_MS [STOP_MS [NONCE [COUNT]]]
# COUNT nodes (default 1) in one process, named NAME (COUNT 1) or NAME-0 .. NAME-(COUNT-1), each with its own
# UDP socket, NodeLink (LINK.md §3, §7) and duty cycle: asleep W_MS, awake at least A_MS. Not the real node
# (micromesos.node): a stand-in that speaks LINK.md §5 — NODE_INFO (cpus 1, mem 64) at every session, a
# RunTask answered with STARTING, RUNNING and FINISHED StatusUpdateMessages encoded by the agent's codec
# (resent at each new session until the master's ack comes back: the gateway drops what it has).
# STOP_MS > 0: the node stops waking after that long. NONCE > 0: a fixed nonce (else random).
# It prints one line per event: SESSION n, WAKE ok, SLEEP ms, RUN fid tid, UPDATE uuid state, ACK uuid,
# AGENT id upid, MSG kind, STOPPED; with COUNT > 1 each line ends with @name.
import asyncio
import os
import sys
import time

from micromesos import codec
from micromesos.link import Link
from micromesos.linknode import NodeLink
from micromesos.linkudp import UDPNode

IP, PORT, NAME = sys.argv[1], int(sys.argv[2]), sys.argv[3]
W, A = int(sys.argv[4]), int(sys.argv[5])
STOP = int(sys.argv[6]) if len(sys.argv) > 6 else 0
NONCE = int(sys.argv[7]) if len(sys.argv) > 7 else 0
COUNT = int(sys.argv[8]) if len(sys.argv) > 8 else 1
Link.rto_ms = 100  # loopback
Link.rto_max_ms = 800
_SlaveInfo, _FrameworkInfo, _StatusUpdateMessage, _Ack, _RunTaskMessage = 20, 23, 52, 53, 65


def uuid4():
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    return bytes(b)


class Node:
    def __init__(self, name, nonce):
        self.name = name
        self.tag = "" if COUNT == 1 else "@" + name
        self.info = codec.encode(_SlaveInfo, {"hostname": name, "resources": [
            {"name": "cpus", "type": 0, "scalar": {"value": 1.0}},
            {"name": "mem", "type": 0, "scalar": {"value": 64.0}}]})
        self.id = self.upid = ""
        self.unacked = []  # [uuid, body]: updates the master has not acknowledged
        self.outbox = []  # bodies the link has not taken yet (it takes max_queue at once)
        self.seen = set()  # task ids launched here: a repeated RunTask starts nothing
        self.sock = UDPNode(IP, PORT, 250)
        self.nl = NodeLink(self.sock.send, name, W, A, mtu=250, window=2, max_message=4096, nonce=nonce or None)
        self.asleep = False
        self.sock.on_frame = self.on_frame
        self.sock.after_batch = self.nl.link.flush
        self.nl.link.deliver = self.deliver
        self.nl.on_session = self.on_session
        self.nl.first = (0x80, self.info)  # NODE_INFO: the first message of every session (LINK.md §5)

    def say(self, *a):
        print(*(a + ((self.tag,) if self.tag else ())))

    def on_frame(self, buf, n):
        if not self.asleep:  # the radio is off while asleep
            self.nl.input(buf, n)

    def push(self):
        while self.outbox and self.nl.link.send(10, self.outbox[0]):
            self.outbox.pop(0)

    def update(self, fid, tid, state):
        u = uuid4()
        ts = time.time() + 0.0
        st = {"task_id": tid, "state": state, "slave_id": self.id, "timestamp": ts, "source": 2, "uuid": u}
        body = codec.encode(_StatusUpdateMessage, {"update": {
            "framework_id": fid, "slave_id": self.id, "status": st, "timestamp": ts, "uuid": u,
            "latest_state": state}, "pid": self.upid})
        self.unacked.append([u, body])
        self.outbox.append(body)
        self.push()
        self.say("UPDATE", u.hex(), state)

    def deliver(self, kind, buf, s, e):
        b = bytes(buf[s:e])
        if kind == 0x81:  # AGENT
            n = b[0]
            self.id = b[1 : 1 + n].decode()
            self.upid = b[2 + n :].decode()
            self.say("AGENT", self.id, self.upid)
        elif kind == 7:  # RunTaskMessage
            m = codec.decode(_RunTaskMessage, b)
            fid = codec.decode(_FrameworkInfo, m["framework"])["id"]
            tid = m["task"]["task_id"]
            self.say("RUN", fid, tid)
            if tid in self.seen:
                return
            self.seen.add(tid)
            for st in (0, 1, 2):  # STARTING, RUNNING, FINISHED
                self.update(fid, tid, st)
        elif kind == 11:  # StatusUpdateAcknowledgementMessage
            m = codec.decode(_Ack, b)
            self.say("ACK", m["uuid"].hex())
            for x in self.unacked:
                if x[0] == m["uuid"]:
                    self.unacked.remove(x)
                    break
        else:
            self.say("MSG", kind)

    def on_session(self, session):
        self.say("SESSION", self.nl.sessions)
        inq = [m[1] for m in self.nl.link.q] + self.outbox
        for u, body in self.unacked:
            if not any(body is q for q in inq):
                self.outbox.append(body)  # at least once across sessions: the gateway drops what it has
        self.push()

    async def run(self):
        asyncio.create_task(self.sock.run())
        asyncio.create_task(self.nl.link.timers())
        nl = self.nl
        up = False
        t_start = time.ticks_ms()
        while True:
            t0 = time.ticks_ms()
            if not up:
                up = await nl.connect(20)
            elif not await nl.wake():
                up = await nl.connect(20)
            self.say("WAKE", up)
            nap = W
            while up:
                self.push()
                if not await nl.linger(t0, A):
                    up = False
                    break
                nap = await nl.sleep(W)
                if nap >= 0:
                    break
            if STOP and time.ticks_diff(time.ticks_ms(), t_start) >= STOP:
                self.asleep = True
                self.say("STOPPED")
                return
            self.say("SLEEP", nap)
            self.asleep = True
            await asyncio.sleep_ms(max(nap, 0) if up else 200)
            self.asleep = False


async def pusher(nodes):
    while True:
        for n in nodes:
            n.push()
        await asyncio.sleep_ms(20)


async def main():
    nodes = [Node(NAME if COUNT == 1 else "%s-%d" % (NAME, i), NONCE + i if NONCE else 0) for i in range(COUNT)]
    asyncio.create_task(pusher(nodes))
    for n in nodes:
        asyncio.create_task(n.run())
        await asyncio.sleep_ms(W // COUNT if COUNT > 1 else 0)  # wakes spread over the period
    while True:
        await asyncio.sleep(100)


asyncio.run(main())
