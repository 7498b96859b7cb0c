# The codec, in the unix port, against every body a real Mesos 1.12 master and agent exchanged on loopback.
# MIT licence. Expectations: protoc's decodings in golden/captured/master-agent-decoded.txt.
import base64
import json
import os

import pytest

import mpy
import textformat
from test_codec_vectors import check_result, run_jobs

CAPTURED = os.path.join(mpy.GOLDEN, "captured")


def _records():
    with open(os.path.join(CAPTURED, "master-agent.jsonl")) as f:
        recs = [json.loads(line) for line in f]
    return [r for r in recs if r["kind"] == "request" and r["type"].startswith("mesos.internal.")]


RECORDS = _records()
TEXTS = textformat.decoded_blocks(os.path.join(CAPTURED, "master-agent-decoded.txt"))


def _case(r):
    T = textformat.type_of(r["type"])
    body = base64.b64decode(r["body_b64"])
    expected = textformat.to_codec(T, textformat.parse(TEXTS[r["seq"]]))
    return T, body.hex(), expected


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    jobs = []
    for r in RECORDS:
        T, hexbody, expected = _case(r)
        jobs.append({"id": r["seq"], "type": T, "hex": hexbody, "values": textformat.canon(expected)})
    return run_jobs(jobs, str(tmp_path_factory.mktemp("captured")))


@pytest.mark.parametrize("r", RECORDS, ids=["%d-%s-%s" % (r["seq"], r["src"], r["type"][15:])
                                           for r in RECORDS])
def test_captured_body(r, results):
    """Every body decodes to protoc's values; the agent's re-encode byte-for-byte from those values alone;
    the master's round-trip through raw keeping byte-for-byte."""
    T, hexbody, expected = _case(r)
    check_result(results[r["seq"]], T, hexbody, expected, must_encode_text=r["src"] == "agent")


def test_capture_is_the_whole_conversation(results):
    # Not a vacuous pass: the capture's README promises these, and every one was checked above.
    seen = {(r["src"], r["type"][15:]) for r in RECORDS}
    for want in [("agent", "RegisterSlaveMessage"), ("agent", "ReregisterSlaveMessage"),
                 ("agent", "StatusUpdateMessage"), ("agent", "UpdateSlaveMessage"),
                 ("agent", "PongSlaveMessage"),
                 ("agent", "UnregisterSlaveMessage"), ("master", "SlaveRegisteredMessage"),
                 ("master", "SlaveReregisteredMessage"), ("master", "PingSlaveMessage"),
                 ("master", "RunTaskMessage"), ("master", "KillTaskMessage"),
                 ("master", "StatusUpdateAcknowledgementMessage"), ("master", "ShutdownFrameworkMessage")]:
        assert want in seen, want
    assert len(results) == len(RECORDS) >= 50
    # The real agent's status updates carry container_status (NetworkInfo, IPAddress, ContainerID, pid).
    su = next(results[r["seq"]] for r in RECORDS if r["type"].endswith("StatusUpdateMessage"))
    cs = su["full"]["update"]["status"]["container_status"]
    assert cs["network_infos"][0]["ip_addresses"][0]["ip_address"] == ["s", "127.0.0.1"]
    assert cs["container_id"]["value"][0] == "s" and cs["executor_pid"][0] == "i"
    # RunTaskMessage from the master: framework and the task's resources came back as kept bytes.
    rt = next(results[r["seq"]] for r in RECORDS if r["type"].endswith("RunTaskMessage"))
    assert rt["raw_count"] >= 3


def test_cpython_codec_agrees_with_capture():
    from micromesos import codec
    for r in RECORDS:
        T, hexbody, expected = _case(r)
        body = bytes.fromhex(hexbody)
        assert textformat.canon(codec.decode(T, body, raw=False)) == textformat.canon(expected), r["seq"]
        assert codec.encode(T, codec.decode(T, body)).hex() == hexbody, r["seq"]
        if r["src"] == "agent":
            assert codec.encode(T, expected).hex() == hexbody, r["seq"]


def test_master_bodies_also_reencode_from_text(results):
    # Stronger than required: protoc-ordered master bodies rebuild byte-for-byte from the text values too.
    for r in RECORDS:
        if r["src"] == "master":
            _, hexbody, _ = _case(r)
            assert results[r["seq"]]["enc_text"] == hexbody, r["seq"]
