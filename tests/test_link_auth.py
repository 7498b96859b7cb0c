# Tagged link frames (docs/LINK.md §8, micromesos.linkauth): the tag is HMAC-SHA256 as Python's hmac module
# computes it; a gateway with link_keys takes only the nodes whose frames carry their key's tag. Against the
# stand-in master with the real gateway and real nodes over UDP. MIT licence.
import asyncio
import hashlib
import hmac
import time

from gwfixture import gateway_config, start_gateway
from standin import StandinMaster
from test_gateway import MISSED, PING, no_problems, registered, updates_received, wait_until
from test_node import node_config, start_node, stop

KEY = "00112233445566778899aabbccddeeff"
OTHER = "ffeeddccbbaa99887766554433221100"

TAGS = r"""
from micromesos.linkauth import Key, Sealed, key_bytes
k = Key(key_bytes("%s"))
for frame in (b"", b"\x11" * 8, bytes(range(200))):
    print(k.tag(frame, len(frame)).hex())
print(key_bytes("abc"), key_bytes("zz" * 16), key_bytes("00" * 15), len(key_bytes("00" * 64)))

class T:  # a transport that keeps what it is given
    mtu = 250
    after_batch = None
    def __init__(self):
        self.sent = []
        self.on_frame = None
    def send(self, f):
        self.sent.append(bytes(f))

t = T()
s = Sealed(t, k)
got = []
s.on_frame = lambda buf, n: got.append(bytes(buf[:n]))
s.send(b"\x15abcdefg")
t.on_frame(t.sent[0], len(t.sent[0]))  # its own frame, tag and all: taken, without the tag
bad = bytearray(t.sent[0]); bad[3] ^= 1
t.on_frame(bad, len(bad))  # one bit changed: dropped
t.on_frame(b"\x15abcdefg", 8)  # no tag: dropped
print(s.mtu, got, s.forged)
""" % KEY


def test_tags_are_hmac_sha256_and_a_changed_bit_or_a_missing_tag_is_dropped(mpy_run):
    out = mpy_run(TAGS).check().lines()
    k = bytes.fromhex(KEY)
    want = [hmac.new(k, f, hashlib.sha256).digest()[:8].hex() for f in (b"", b"\x11" * 8, bytes(range(200)))]
    assert out[:3] == want, out
    assert out[3] == "None None None 64", out
    assert out[4] == "242 [b'\\x15abcdefg'] 2", out


def test_with_link_keys_a_node_with_its_key_runs_a_task_and_one_with_another_never_attaches(tmp_path):
    async def body():
        async with StandinMaster(ping_interval=PING, max_missed=MISSED, ping_timeout=PING * MISSED) as m:
            cfg, path = gateway_config(tmp_path, m.port, status_update_retry_min_ms=2000,
                                       link_keys={"keyed-1": KEY, "keyed-2": KEY})
            gw = start_gateway(path)
            good, glog = start_node(tmp_path / "good", node_config_in(tmp_path / "good", cfg["link_port"],
                                                                     name="keyed-1", link_key=KEY))
            bad, blog = start_node(tmp_path / "bad", node_config_in(tmp_path / "bad", cfg["link_port"],
                                                                   name="keyed-2", link_key=OTHER))
            try:
                a = await registered(m, gw, "keyed-1")
                await m.launch(command="hello", agent_id=a.id, resources="cpus:0.1;mem:0.01")
                await wait_until(lambda: 2 in [s for _, s in updates_received(m, a.id)], 60,
                                 "TASK_FINISHED from the keyed node", gw)
                time.sleep(1.0)  # the other node has said HELLO many times by now (every rto)
                assert len(m.agents) == 1, [x.info for x in m.agents.values()]
                assert not gw.find("keyed-2"), gw.output()  # never attached: not even a log line
                no_problems(m)
            finally:
                stop(good, glog)
                stop(bad, blog)
                gw.stop()
                print("--- gateway ---\n" + gw.output(60))

    asyncio.run(body())


def node_config_in(d, port, **kw):
    d.mkdir(parents=True, exist_ok=True)
    return node_config(d, port, **kw)


def test_link_keys_in_the_gateway_config_are_checked(mpy_run):
    r = mpy_run("""
from mgateway import gateway
from micromesos.errors import ConfigError
for v in ({"n": "abc"}, {"n": 5}, ["%s"], {"n": "zz" * 16}):
    try:
        gateway.check({"master": "127.0.0.1:5050", "link_keys": v})
        print("accepted", v)
    except ConfigError as e:
        print(str(e).split(":")[0])
print(len(gateway.check({"master": "127.0.0.1:5050", "link_keys": {"n": "%s"}})["link_keys"]))
""" % (KEY, KEY), heapsize="1m").check()
    assert r.lines() == ["link_keys"] * 4 + ["1"], r.lines()
