# micromesos — a Mesos agent for MicroPython boards.
# `make sim` runs a virtual board against the stand-in master; `make test` runs the test suite.
# Both create .venv with the pinned host tools on first use.

BOARD ?= unix
PYTHON ?= python3
VENV ?= .venv
MICROPYTHON ?= $(VENV)/bin/micropython
MPY_CROSS ?= $(VENV)/bin/mpy-cross
MPREMOTE ?= $(VENV)/bin/mpremote
ESPTOOL ?= $(VENV)/bin/esptool
PYTEST_ARGS ?=
SIM_SECONDS ?= 0
MASTER ?=
# A `mesos-agent --credential` JSON file: `make sim` authenticates with it (SASL CRAM-MD5, README).
CREDENTIAL ?=
FUZZ_N ?= 1000000
# The interpreter `make sim` and `make board` run: wheel (64-bit unix port from .venv), or the 32-bit
# device model (`make devmodel`): loaded (stock firmware + .mpy files) or frozen (`make firmware`).
DEVICE ?= wheel
# -X heapsize for sim/board; empty: 100k (a real board's heap) on the device models, today's on the wheel.
HEAPSIZE ?=

# Per-board cross-compile architecture (mpy-cross -march).
MPY_ARCH_esp32 = xtensawin
MPY_ARCH_rp2 = armv6m
MPY_ARCH_unix = host
MPY_ARCH = $(MPY_ARCH_$(BOARD))

.PHONY: venv test sim launch bench fuzz attack mpy clean help devmodel

help:
	@echo "make sim        virtual board (unix port) + stand-in master; MASTER=ip:port for a real master"
	@echo "                CREDENTIAL=credential.json: authenticate (SASL CRAM-MD5; the stand-in runs --authenticate_agents)"
	@echo "                DEVICE=wheel|loaded|frozen [HEAPSIZE=100k]: the 64-bit wheel or a 32-bit device model"
	@echo "                (DEVICE=split [HEAPSIZE=112k]: the loaded one in a stock ESP32's heap of two areas)"
	@echo "                TASK=tasks/x.py|module RESOURCES='cpus:0.1;mem:0.01': launch that instead of hello"
	@echo "make sim GATEWAY=N   a gateway and N sleeping nodes through the link simulator (clocks x1/15 with the"
	@echo "                stand-in; MASTER=ip:port: real timeouts, nodes awake 5 s of every 120 s);"
	@echo "                LINK_LOSS=0.2 LINK_DUP=0.05 LINK_REORDER=0.1 LINK_DELAY_MS=20 ...: the link's impairments"
	@echo "make launch     TASK=path/to/mytask.py RESOURCES='...' [ARGS='...']: your task on the running sim's board"
	@echo "make devmodel   build the 32-bit device model into build/devmodel/{loaded,frozen}/micropython"
	@echo "                (tools/devmodel.py split: the loaded one in a stock ESP32's heap of two areas)"
	@echo "make test       run the test suite (code under test runs in the MicroPython unix port)"
	@echo "make bench      measure codec, agent and task figures; writes docs/BENCHMARKS.md"
	@echo "make fuzz       long decoder/HTTP fuzz run (FUZZ_N inputs); figures into docs/BENCHMARKS.md"
	@echo "make attack     attack a virtual board (connections, spoofing, task faults); ATTACK=<case name part>"
	@echo "make mpy        cross-compile lib/ for BOARD=esp32|rp2|unix into build/BOARD/"
	@echo "make flash      BOARD=esp32|rp2 [PORT=/dev/ttyUSB0] [FIRMWARE=...] [CHIP=esp32s3]: flash, then deploy"
	@echo "make deploy     compile lib/ and the board module, copy them with config.json to the board (mpremote)"
	@echo "make task-upload TASK=tasks/x.py   compile a task and copy it into the board's tasks/"
	@echo "make board      a virtual board: the unix port behind a pty that mpremote can drive"
	@echo "make repl       mpremote REPL on PORT"
	@echo "make firmware   BOARD=esp32 MICROPY_DIR=...: a firmware with the agent frozen in (needs ESP-IDF)"
	@echo "make typecheck  mypy against the esp32 and rp2 ports' stubs"

# The venv is rebuilt whenever requirements.txt changes.
$(VENV)/.stamp: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

venv: $(VENV)/.stamp

test: venv devmodel
	$(VENV)/bin/pytest -q $(PYTEST_ARGS) tests

# MicroPython's unix port as an x86-32 binary (needs gcc-multilib), from MICROPY_DIR or the pinned
# ../shared/vendor snapshot; rebuilt only when its inputs change (tools/devmodel.py).
devmodel:
	$(PYTHON) tools/devmodel.py --quiet

DEVICE_DEP = $(if $(filter wheel split,$(DEVICE)),,devmodel)  # split: built by tools/sim.py when missing
# GATEWAY=N: a gateway and N sleeping nodes through the link simulator instead of one board (tools/gwsim.py;
# the link's impairments are linksim's variables LINK_LOSS, LINK_DUP, LINK_REORDER, LINK_DELAY_MS, ...).
GATEWAY ?=
sim: venv $(DEVICE_DEP)
ifneq ($(GATEWAY),)
	$(VENV)/bin/python tools/gwsim.py --gateway $(GATEWAY) --seconds $(SIM_SECONDS) \
		$(if $(MASTER),--master $(MASTER)) --device $(DEVICE) $(if $(HEAPSIZE),--node-heapsize $(HEAPSIZE)) \
		$(if $(TASK),--task '$(TASK)') $(if $(RESOURCES),--resources '$(RESOURCES)')
else
	$(VENV)/bin/python tools/sim.py --seconds $(SIM_SECONDS) $(if $(MASTER),--master $(MASTER)) \
		--device $(DEVICE) $(if $(HEAPSIZE),--heapsize $(HEAPSIZE)) \
		$(if $(TASK),--task '$(TASK)') $(if $(RESOURCES),--resources '$(RESOURCES)') \
		$(if $(CREDENTIAL),--credential '$(CREDENTIAL)')
endif

# Your own task on the board of a running `make sim` (README "Write your first task"); exit status 0 only
# for TASK_FINISHED. ARGS: ctx.arguments, TASK_ENV: ctx.env (K=V ...), both space-separated; LAUNCH_TIMEOUT:
# seconds until the task is killed, 0 for never.
RESOURCES ?=
ARGS ?=
TASK_ENV ?=
LAUNCH_TIMEOUT ?= 0
launch: venv
	$(if $(TASK),,$(error TASK=path/to/mytask.py is required, e.g. make launch TASK=tasks/thermo.py RESOURCES='cpus:0.1;mem:0.01;temperature:{temp0}'))
	$(VENV)/bin/python tools/launch.py --task '$(TASK)' $(if $(RESOURCES),--resources '$(RESOURCES)') \
		$(if $(ARGS),--args='$(ARGS)') $(foreach kv,$(TASK_ENV),--env '$(kv)') --timeout $(LAUNCH_TIMEOUT)

bench: venv
	$(VENV)/bin/python tools/bench/run.py --write docs/BENCHMARKS.md

fuzz: venv
	$(VENV)/bin/python tools/fuzz.py --n $(FUZZ_N) --write docs/BENCHMARKS.md

# Attacks on a live virtual board and the stand-in master (loopback, bounded); ATTACK=<name part> for some.
attack: venv
	$(VENV)/bin/python tools/attack.py $(if $(ATTACK),--only "$(ATTACK)")

# Every lib/ file compiled with the pinned mpy-cross for the board's architecture (tools/mpytree.py, as the tests'
# virtual boards): each names its code by its module name (-s micromesos.http: the name tracebacks show, which the
# board interns anyway), and its log and error texts move to build/BOARD/micromesos/logtext.txt (tools/logtext.py).
LIB_PY := $(shell find lib -name '*.py' -not -name manifest.py)
mpy: venv
	@test -n "$(MPY_ARCH)" || { echo "unknown BOARD=$(BOARD) (esp32, rp2, unix)"; exit 2; }
	@$(VENV)/bin/python tools/mpytree.py --mpy-cross $(MPY_CROSS) --arch $(MPY_ARCH) --board $(BOARD) build/$(BOARD)

clean:
	rm -rf build

# Board targets (flash, deploy, task-upload, repl, board, firmware, typecheck) live in boards/board.mk.
-include boards/board.mk
