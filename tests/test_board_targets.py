# Every make target that takes BOARD answers an unknown one with the same single line naming the boards,
# before it runs or builds anything (a dry run too); `make firmware` names a MICROPY_DIR that is not a
# micropython checkout instead of failing inside the port's own make (issue 12). MIT licence.
import os
import shutil
import subprocess

import mpy
import pytest

ROOT = mpy.ROOT
TARGETS = ("deploy", "task-upload", "repl", "flash", "firmware", "sim", "board", "mpy")
UNKNOWN = "unknown BOARD=foo: the boards are esp32, rp2, unix (boards/<name>/)"


def make(*args, env=None):
    return subprocess.run(["make", "--no-print-directory"] + list(args), cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env=env)


def one_line(p):
    lines = [ln for ln in (p.stdout + p.stderr).splitlines() if ln.strip()]
    assert p.returncode != 0 and len(lines) == 1, p.stdout + p.stderr
    return lines[0]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("dry", [False, True])
def test_unknown_board_gets_one_line_naming_the_boards(target, dry, tmp_path):
    # With everything else a target could complain about present: a port, a task, a checkout.
    args = ["BOARD=foo", "PORT=/dev/null", "TASK=tasks/hello.py", "MICROPY_DIR=" + str(tmp_path)]
    line = one_line(make(*(["-n"] if dry else []), target, *args))
    assert line.endswith(UNKNOWN + ".  Stop."), line
    assert not os.path.exists(os.path.join(ROOT, "build", "foo")), "something was built for BOARD=foo"


def test_empty_or_two_boards_are_unknown_too():
    assert "unknown BOARD=:" in one_line(make("deploy", "BOARD="))
    assert "unknown BOARD=esp32 rp2:" in one_line(make("mpy", "BOARD=esp32 rp2"))


def test_known_boards_pass_the_check():
    for board in ("esp32", "rp2", "unix"):
        p = make("-n", "mpy", "BOARD=" + board)
        assert p.returncode == 0 and "*** unknown BOARD" not in p.stdout + p.stderr, p.stdout + p.stderr


@pytest.mark.parametrize("board, port_dir", [("rp2", "rp2"), ("esp32", "esp32")])
def test_firmware_names_a_missing_checkout(board, port_dir, tmp_path):
    line = one_line(make("firmware", "BOARD=" + board, "MICROPY_DIR=/nothere"))
    assert ("MICROPY_DIR=/nothere is not a micropython checkout (no mpy-cross/ and ports/%s/ in it)"
            % port_dir) in line
    assert "No such file" not in line and "Error 2" not in line
    # A directory that is not one (an empty one) gets the same line.
    assert "is not a micropython checkout" in one_line(make("firmware", "BOARD=" + board,
                                                            "MICROPY_DIR=" + str(tmp_path)))


def test_firmware_rp2_without_the_arm_toolchain(tmp_path):
    path = "/usr/bin:/bin"
    if shutil.which("arm-none-eabi-gcc", path=path):
        pytest.skip("an Arm toolchain is installed here")
    for d in ("mpy-cross", "ports/rp2"):
        os.makedirs(tmp_path / d)
        (tmp_path / d / "Makefile").write_text("all:\n\tfalse\n")
    p = make("firmware", "BOARD=rp2", "MICROPY_DIR=" + str(tmp_path), env=dict(os.environ, PATH=path))
    assert "arm-none-eabi-gcc not found" in one_line(p)
