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


# --- strict JSON with positions, ranges the boot would trip on, Wi-Fi-less address (issue 12, item 8) ---

LOAD = r"""
import sys
from micromesos import config
from micromesos.errors import ConfigError
try:
    cfg = config.load(sys.argv[1], wifi=sys.argv[2] == "wifi")
    print("OK", cfg["ip"], cfg["advertise_ip"], sys.modules.get("micromesos.jsoncheck"))
except ConfigError as e:
    print("ConfigError", str(e).replace(sys.argv[1], "c.json"))
"""


def load(mpy_run, tmp_path, text, wifi=True):
    (tmp_path / "c.json").write_bytes(text.encode() if isinstance(text, str) else text)
    p = tmp_path / "load.py"
    p.write_text(LOAD)
    return mpy_run.script(str(p), args=[str(tmp_path / "c.json"), "wifi" if wifi else "none"]).check().out.strip()


@pytest.mark.parametrize("text,where", [
    # MicroPython's json.loads accepts the first four silently; the rest it reports as "syntax error" only.
    ('{\n  "master": "10.0.0.1:5050",\n  "port": 5051,\n}\n', "line 3 column 15: trailing comma"),
    ('{"master": "10.0.0.1:5050", "resources": ["a", "b",]}', "line 1 column 51: trailing comma"),
    ('{\n"master" "10.0.0.1:5050"}', "line 2 column 10: expected ':'"),
    ('{"master": "10.0.0.1:5050", "port": 05051}', "line 1 column 37: leading zero in a number"),
    ('{"master": "10.0.0.1:5050"\n "port": 5051}', "line 2 column 2: expected ',' or '}'"),
    ('{"master": "10.0.0.1:5050", "port": }', "line 1 column 37: expected a value"),
    ('{"master": "10.0.0.1:5050', "line 1 column 12: unterminated string"),
    ('{"master": "10.0.0.1:5050\n"}', "line 1 column 26: control character in a string (write \\n, \\t)"),
    ('{"master": "10.0.0.1:5050", "log_level": "in\\qo"}', "line 1 column 45: bad escape"),
    ('{"master": "10.0.0.1:5050"} {}', "line 1 column 29: unexpected data after the JSON value"),
    ('', "line 1 column 1: unexpected end of the file"),
    ('{"master": "10.0.0.1:5050", "port": 5051.}', "line 1 column 42: expected digits after '.'"),
    ("{'master': '10.0.0.1:5050'}", 'line 1 column 2: expected a "key"'),
])
def test_invalid_json_names_line_and_column(mpy_run, tmp_path, text, where):
    assert load(mpy_run, tmp_path, text) == "ConfigError c.json: not valid JSON at " + where


def test_strict_json_still_reads_every_legal_form_and_drops_its_checker(mpy_run, tmp_path):
    text = ('{ "master" : "10.0.0.1:5050",\r\n\t"resources": {"mem": 64, "s": ["a", "b"], "x": 2.5e+1},'
            '"attributes": "rack:lab\\u0031", "seed": 0, "check_master_ip": false, "ping_timeout": 2E1,'
            '"fs": "/tmp/x", "advertise_port": null }')
    out = load(mpy_run, tmp_path, text)
    assert out == "OK 0.0.0.0 None None", out  # the checker module left sys.modules after the read


def test_file_larger_than_the_limit_is_refused(mpy_run, tmp_path):
    out = load(mpy_run, tmp_path, '{"master": "10.0.0.1:5050", "fs": "%s"}' % ("x" * 9000))
    assert out == "ConfigError c.json: larger than 8192 bytes"


@pytest.mark.parametrize("wifi,extra,result", [
    (False, {}, "ConfigError advertise_ip: missing; \"ip\" is 0.0.0.0 and no Wi-Fi tells the board's address"),
    (True, {}, "OK 0.0.0.0 None None"),  # Wi-Fi supplies the address (firmware/main.py)
    (False, {"advertise_ip": "10.0.0.9"}, "OK 0.0.0.0 10.0.0.9 None"),
    (False, {"ip": "10.0.0.9"}, "OK 10.0.0.9 None None"),
    (True, {"advertise_ip": "0.0.0.0"}, "ConfigError advertise_ip: expected an IPv4 address \"a.b.c.d\", "
                                        "got '0.0.0.0'"),
])
def test_unspecified_listen_address_needs_an_advertised_one_without_wifi(mpy_run, tmp_path, wifi, extra, result):
    raw = dict({"master": "10.0.0.1:5050"}, **extra)
    assert load(mpy_run, tmp_path, json.dumps(raw), wifi) == result


@pytest.mark.parametrize("key,value,msg", [
    ("task_slice_ms", 0, "task_slice_ms: expected a whole number 1-600000, got 0"),
    ("fetch_max_bytes", 0, "fetch_max_bytes: expected a whole number 1-16777216, got 0"),
    ("recv_buffer", 512, "recv_buffer: expected a whole number 1024-65536, got 512"),
    ("outbox_size", 100000, "outbox_size: expected a whole number 512-65536, got 100000"),
    ("max_connections", 1, "max_connections: expected a whole number 2-8, got 1"),
    ("heap_reserve", -1, "heap_reserve: expected a whole number 0-16777216, got -1"),
    ("seed", True, "seed: expected a whole number 0-1073741823, got True"),
    ("task_slice_ms", 1.5, "task_slice_ms: expected a whole number 1-600000, got 1.5"),
    ("master", "010.0.0.1:5050", "master: expected \"a.b.c.d:port\""),  # inet_pton (and upid) refuse it
    ("ip", "10.0.0.256", "ip: expected an IPv4 address"),
])
def test_values_the_boot_would_trip_on_are_refused_at_once(mpy_run, tmp_path, key, value, msg):
    out = check(mpy_run, tmp_path, {"master": "10.0.0.1:5050", key: value})
    assert out.startswith("ConfigError " + msg), out


def test_zero_slice_and_fetch_limit_are_not_replaced_by_defaults(mpy_run):
    # The smallest legal values reach the runner as given (tasks.py reads them with `or default`).
    r = mpy_run("""
from micromesos import config
cfg = config.check({"master": "10.0.0.1:5050", "task_slice_ms": 1, "fetch_max_bytes": 1})
print(cfg["task_slice_ms"], cfg["fetch_max_bytes"])
""").check()
    assert r.lines() == ["1 1"]


def test_size_ranges_agree_with_the_transport(mpy_run):
    # agentinit raises ConfigError for these when the agent starts (after Wi-Fi, with a traceback and a
    # reboot on a board); config must refuse exactly what it would, before anything starts.
    r = mpy_run("""
from micromesos import agentinit, config
for key, _attr, lo, hi in agentinit._SIZES:
    spec = config._SCHEMA[key]
    print(key, spec[2] == lo and spec[3] == hi)
""", heapsize="256k").check()  # both compiled from source here (a board loads .mpy): room for the compiler
    assert r.lines() and all(line.endswith(" True") for line in r.lines()), r.lines()


def test_wifi_json_gets_positions_too(mpy_run, tmp_path):
    (tmp_path / "wifi.json").write_text('{"ssid": "lab", "password": "pw",}')
    r = mpy_run("""
from micromesos import config
from micromesos.errors import ConfigError
try:
    config.wifi(%r)
except ConfigError as e:
    print(str(e).replace(%r, "wifi.json"))
""" % (str(tmp_path / "wifi.json"), str(tmp_path / "wifi.json"))).check()
    assert r.lines() == ["wifi.json: not valid JSON at line 1 column 33: trailing comma"]


def test_readme_config_table_lists_every_key():
    import os
    import re
    from mpy import LIB, ROOT
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    section = text[text.index("## Configuration"):]
    section = section[:section.index("\n## ", 3)]
    documented = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            documented |= set(re.findall(r"`([a-z_]+)`", line.split("|")[1]))
    with open(os.path.join(LIB, "micromesos", "config.py")) as f:
        src = f.read()
    keys = set(re.findall(r'^    ([a-z_]+)=\(', src, re.M))  # _SCHEMA = dict(key=(default, kind...), ...)
    assert "master" in keys and "state_dir" in keys
    assert keys - documented == set(), "README's config table lacks these keys"
    assert documented - keys == set(), "README documents keys config.py doesn't know"


def test_boot_without_wifi_and_without_an_address_stops_with_one_line(tmp_path):
    # The virtual board has no Wi-Fi: today this config passes validation and the agent then fails in
    # libprocess with a traceback (on a board: a reboot every ~10 s).
    import os
    import mpy
    (tmp_path / "config.json").write_text(json.dumps({"master": "127.0.0.1:5050", "fs": str(tmp_path / "fs")}))
    r = mpy.run_mpy(script=os.path.join(mpy.ROOT, "firmware", "main.py"), args=["config.json"], cwd=str(tmp_path),
                    extra_path=(os.path.join(mpy.ROOT, "boards", "unix"),), heapsize="256k", timeout=30)
    lines = [ln for ln in (r.out + r.err).splitlines() if ln.strip()]
    assert (r.rc, lines) == (2, ['micromesos: config error: advertise_ip: missing; "ip" is 0.0.0.0 and no Wi-Fi '
                                 "tells the board's address"]), r.out + r.err
