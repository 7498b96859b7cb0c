# HMAC-MD5 by hand (RFC 2104) and the pure-Python MD5 fallback (micromesos/md5.py), in MicroPython: every
# CRAM-MD5 answer in golden/captured/auth/ recomputed, and MD5 checked against CPython's hashlib. MIT licence.
import hashlib
import hmac
import json
import os

import pytest

import mpy

# (key, challenge, captured digest) from the capture's README table (scenario 11: the wrong secret's digest).
CAPTURED = [
    ("s3cret-micro", "<2116811070.617598@vm>", "fc19ec21bba2e5335aa8214fd0e76e9b"),
    ("s3cret-micro", "<2416766808.617620@vm>", "b55f96aca0c0dc515ee713be0cbffa8c"),
    ("not-the-secret", "<2181471070.617641@vm>", "3e6ee22b80982208735df7ed1b9977aa"),
    ("s3cret-micro", "<2264153197.617733@vm>", "9aa44c44f1e8fa21b1f0fdbcdee8fa66"),
    ("s3cret-micro", "<1524159092.617759@vm>", "e9911970031ce9c872595f3950181132"),
    ("s3cret-micro", "<60952133.617835@vm>", "92608d914559ec5aae4cd54f0b3939bb"),
    ("s3cret-micro", "<1946190042.617856@vm>", "4550e04f996a63d295d28b00a8aa76bb"),
    ("s3cret-micro", "<4023201939.617957@vm>", "94b80e74b269561cce3dbe920384e962"),
]

RUNNER = r"""
import json, sys
from micromesos import authn, md5
cases = json.loads(sys.stdin.read())
out = []
for key, msg in cases["hmac"]:
    k, m = bytes.fromhex(key), bytes.fromhex(msg)
    out.append([authn.hmac_md5(k, m).hex(), authn.hmac_md5(k, m, md5.digest).hex()])
print(json.dumps({"hmac": out, "md5": [md5.digest(bytes.fromhex(d)).hex() for d in cases["md5"]],
                  "response": authn.response(b"board-1", b"s3cret-micro", b"<2116811070.617598@vm>").decode()}))
"""


@pytest.mark.parametrize("device", ["wheel", "loaded"])
def test_hmac_and_md5_match_the_capture_and_hashlib(device):
    rnd = __import__("random").Random(13)
    lengths = [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 128, 300]
    data = [bytes(rnd.getrandbits(8) for _ in range(n)) for n in lengths]
    keys = [(k.encode(), c.encode()) for k, c, _ in CAPTURED]
    keys += [(os.urandom(n), os.urandom(40)) for n in (0, 63, 64, 65, 100)]  # keys longer than a block hashed
    cases = {"hmac": [[k.hex(), m.hex()] for k, m in keys], "md5": [d.hex() for d in data]}
    r = mpy.run_mpy(RUNNER, stdin=json.dumps(cases), heapsize="256k", device=device).check()
    got = json.loads(r.out)
    for (k, m), (native, fallback) in zip(keys, got["hmac"]):
        want = hmac.new(k, m, hashlib.md5).hexdigest()
        assert native == fallback == want
    assert got["hmac"][:len(CAPTURED)] == [[d, d] for _, _, d in CAPTURED]
    assert got["md5"] == [hashlib.md5(d).hexdigest() for d in data]
    assert got["response"] == "board-1 fc19ec21bba2e5335aa8214fd0e76e9b"


CRED_RUNNER = r"""
import sys
from micromesos import authn
from micromesos.errors import ConfigError
for p in sys.argv[1:]:
    try:
        c = authn.read_credential(p)
        print("ok", c[0].decode(), len(c[1]))
    except ConfigError as e:
        print("error", e)
"""


def test_credential_file_errors_name_the_file_and_never_the_secret(tmp_path):
    files = {"good": {"principal": "board-1", "secret": "s3cret-micro"},
             "nosecret": {"principal": "board-1"}, "space": {"principal": "board 1", "secret": "s3cret-micro"},
             "list": ["board-1", "s3cret-micro"]}
    paths = []
    for name, body in files.items():
        p = tmp_path / (name + ".json")
        p.write_text(json.dumps(body))
        paths.append(str(p))
    (tmp_path / "bad.json").write_text('{"principal": "board-1", "secret": "s3cret-mi')
    paths += [str(tmp_path / "bad.json"), str(tmp_path / "missing.json")]
    r = mpy.run_mpy(CRED_RUNNER, args=paths).check()
    lines = r.out.splitlines()
    assert lines[0] == "ok board-1 12"
    assert lines[1] == "error secret: expected a non-empty string in %s" % paths[1]
    assert lines[2].startswith("error principal: must not contain a space")
    assert lines[3] == "error %s: expected a JSON object" % paths[3]
    assert lines[4] == "error %s: not valid JSON" % paths[4]
    assert lines[5].startswith("error %s: cannot read the credential file" % paths[5])
    assert "s3cret" not in r.out.replace("ok board-1 12", "")
