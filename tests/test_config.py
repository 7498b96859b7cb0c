# Config: defaults, one clear error naming the bad key, resource/attribute strings parsed at boot.
import json

import pytest

GOOD = {"master": "10.0.0.1:5050", "port": 5051, "resources": "mem:64;sensors:{a,b};gpio:[2-5,12-15]",
        "attributes": "rack:lab1;floor:2"}

CODE = r"""
import json, sys
from micromesos import config
from micromesos.errors import ConfigError
try:
    cfg = config.check(json.loads(sys.argv[1]))
    print("OK", json.dumps([cfg["master"], cfg["port"], cfg["advertise_ip"], cfg["resources"], cfg["attributes"]]))
except ConfigError as e:
    print("ConfigError", e)
"""


def check(mpy_run, tmp_path, raw):
    p = tmp_path / "c.py"
    p.write_text(CODE)
    r = mpy_run.script(str(p), args=[json.dumps(raw)]).check()
    return r.out.strip()


def test_good_config_gets_defaults_and_parsed_resources(mpy_run, tmp_path):
    out = check(mpy_run, tmp_path, GOOD)
    assert out.startswith("OK ")
    master, port, adv, res, attrs = json.loads(out[3:])
    assert (master, port, adv) == ("10.0.0.1:5050", 5051, None)
    assert res == [["mem", 64.0], ["sensors", ["a", "b"]], ["gpio", [[2, 5], [12, 15]]]]
    assert attrs == [["rack", "lab1"], ["floor", 2.0]]


@pytest.mark.parametrize("raw,key", [
    ({}, "master: missing"),
    ({"master": "mesos.lab:5050"}, "master: expected"),
    ({"master": "0.0.0.0:5050"}, "master: expected"),
    ({"master": "10.0.0.1:5050", "port": "5051"}, "port: expected a port"),
    ({"master": "10.0.0.1:5050", "port": 70000}, "port: expected a port"),
    ({"master": "10.0.0.1:5050", "advertise_ip": "10.0.0"}, "advertise_ip: expected an IPv4"),
    ({"master": "10.0.0.1:5050", "log_level": "loud"}, "log_level: expected one of"),
    ({"master": "10.0.0.1:5050", "mastr": "x"}, "mastr: unknown key"),
    ({"master": "10.0.0.1:5050", "resources": "mem:-1"}, "resources: mem: -1.0 is negative"),
    ({"master": "10.0.0.1:5050", "resources": "mem:0.0001"}, "rounds to 0"),
    ({"master": "10.0.0.1:5050", "resources": "gpio:[1-5,4-6]"}, "resources: overlapping ranges"),
    ({"master": "10.0.0.1:5050", "resources": "s:{a,a}"}, "resources: duplicate set items"),
    ({"master": "10.0.0.1:5050", "resources": "cpus(role):1"}, "reserved roles"),
    ({"master": "10.0.0.1:5050", "resources": "cpus"}, "expected name:value"),
    ({"master": "10.0.0.1:5050", "ntp_host": ""}, "ntp_host: expected a host name or IPv4"),
    ({"master": "10.0.0.1:5050", "ntp_host": "ntp server"}, "ntp_host: expected a host name"),
    ({"master": "10.0.0.1:5050", "ntp_host": "-ntp.lab"}, "ntp_host: expected a host name"),
    ({"master": "10.0.0.1:5050", "ntp_host": "a" * 64 + ".lab"}, "ntp_host: expected a host name"),
    ({"master": "10.0.0.1:5050", "ntp_host": "n\u00e4t.lab"}, "ntp_host: expected a host name"),
    ({"master": "10.0.0.1:5050", "ntp_host": 123}, "ntp_host: expected a host name"),
])
def test_bad_config_names_the_key(mpy_run, tmp_path, raw, key):
    out = check(mpy_run, tmp_path, raw)
    assert out.startswith("ConfigError ") and key in out, out


def test_load_reports_unreadable_and_invalid_json(mpy_run, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    r = mpy_run("""
from micromesos import config
from micromesos.errors import ConfigError
for p in (%r, %r):
    try:
        config.load(p)
    except ConfigError as e:
        print(e)
""" % (str(tmp_path / "missing.json"), str(bad))).check()
    lines = r.lines()
    assert lines[0].endswith("missing.json: cannot read the config file")
    assert "bad.json: not valid JSON" in lines[1]


def test_ntp_host_defaults_to_the_pool_and_takes_a_name_or_an_address(mpy_run):
    r = mpy_run("""
from micromesos import config
for v in (None, "ntp.lab.example", "192.168.1.1", "time-1.lab"):
    raw = {"master": "10.0.0.1:5050"}
    if v is not None:
        raw["ntp_host"] = v
    print(config.check(raw)["ntp_host"])
""").check()
    assert r.lines() == ["pool.ntp.org", "ntp.lab.example", "192.168.1.1", "time-1.lab"]


def test_wifi_credentials_name_the_file_and_key(mpy_run, tmp_path):
    cases = {"ok.json": {"ssid": "lab", "password": "pw"}, "nopw.json": {"ssid": "lab"},
             "long.json": {"ssid": "x" * 129}, "pw.json": {"ssid": "lab", "password": 5}, "list.json": []}
    for name, v in cases.items():
        (tmp_path / name).write_text(json.dumps(v))
    r = mpy_run("""
from micromesos import config
from micromesos.errors import ConfigError
for n in ("ok.json", "nopw.json", "long.json", "pw.json", "list.json", "missing.json"):
    try:
        print(config.wifi(%r + "/" + n))
    except ConfigError as e:
        print(str(e).replace(%r + "/", ""))
""" % (str(tmp_path), str(tmp_path))).check()
    assert r.lines() == ["('lab', 'pw')", "('lab', '')", "ssid: expected a non-empty string in long.json",
                         "password: expected a string in pw.json", "list.json: expected a JSON object",
                         'missing.json: cannot read it (needs {"ssid": "...", "password": "..."})']
