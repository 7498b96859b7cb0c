# `make typecheck`: device code checked by the pinned mypy against the pinned MicroPython 1.29 stubs
# of each port (esp32, rp2 Pico W), so only APIs those ports have are called. MIT licence.
import subprocess

import mpy

ROOT = mpy.ROOT


def typecheck(*args):
    p = subprocess.run(["make", "--no-print-directory", "typecheck"] + list(args), cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    return p.returncode, p.stdout + p.stderr


def sections(out):
    """{board: mypy's lines for that board}"""
    res, cur = {}, None
    for line in out.splitlines():
        if line.startswith("typecheck: "):
            cur = line.split("boards/")[-1].split("/")[0]
            res[cur] = []
        elif cur:
            res[cur].append(line)
    return res


def test_make_typecheck_passes_for_lib_firmware_and_both_boards():
    rc, out = typecheck()
    s = sections(out)
    assert sorted(s) == ["esp32", "rp2"], out
    assert rc == 0, out
    for board, lines in s.items():
        assert any(ln.startswith("Success: no issues found") for ln in lines), (board, out)


def test_boards_and_firmware_pass_on_their_own():
    # The board modules, firmware and sensor drivers, with errors in other lib/ modules they import
    # silenced: this part must hold whatever state the rest of lib/ is in.
    rc, out = typecheck("TYPECHECK_FILES=firmware/main.py firmware/boot.py lib/micromesos/sensors.py",
                        "MYPY_FLAGS=--follow-imports=silent")
    assert rc == 0, out
    s = sections(out)
    assert sorted(s) == ["esp32", "rp2"]
    for board, lines in s.items():
        assert lines[-1] == "Success: no issues found in 4 source files", (board, out)


def test_typecheck_rejects_apis_a_port_does_not_have(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import machine\n"
        "import socket\n"
        "import time\n"
        "import esp32\n\n\n"
        "def f():\n"
        "    machine.TouchPad(machine.Pin(4)).read()   # ESP32 only\n"
        "    esp32.mcu_temperature()                   # S2/S3/C3 only, not the generic ESP32\n"
        "    socket.sockaddr(b'')                      # unix port only\n"
        "    time.sleep_us(5)                          # every port has this one\n")
    rc, out = typecheck("TYPECHECK_FILES=" + str(probe), "MYPY_FLAGS=--follow-imports=silent")
    assert rc != 0
    s = sections(out)
    esp, rp2 = "\n".join(s["esp32"]), "\n".join(s["rp2"])
    assert 'Module has no attribute "mcu_temperature"' in esp
    assert 'Module has no attribute "sockaddr"' in esp
    assert "TouchPad" not in esp
    assert 'Module has no attribute "TouchPad"' in rp2
    assert 'Cannot find implementation or library stub for module named "esp32"' in rp2
    assert "sleep_us" not in esp + rp2
