# Device targets: flash, deploy, task-upload, repl, board (virtual board), firmware, typecheck.
# MIT licence. Included by the Makefile, which defines BOARD, VENV, MPY_CROSS, MPREMOTE, ESPTOOL, MPY_ARCH.

# --- knobs (override on the command line) ------------------------------------------------------
# PORT: the board's serial device; for BOARD=unix the link `make board` makes to the virtual pty.
PORT_esp32 = /dev/ttyUSB0
PORT_rp2 = /dev/ttyACM0
PORT_unix = var/vboard.pty
PORT ?= $(PORT_$(BOARD))
BAUD ?= 460800
# CHIP (BOARD=esp32 only): esp32 | esp32s2 | esp32s3 | esp32c3 | esp32c6
CHIP ?= esp32
# CONFIG is copied to :config.json; WIFI ({"ssid": ..., "password": ...}) to :wifi.json if present.
CONFIG_unix = boards/unix/vboard.json
# ROLE=bridge (BOARD=esp32): the board is a gateway bridging Wi-Fi and ESP-NOW (docs/GATEWAY.md §10): its
# firmware freezes lib/mgateway too, and deploy puts firmware/gateway_main.py and CONFIG (gateway.json) on it.
# ROLE=node: a node behind a gateway (docs/GATEWAY.md §8): the agent's firmware and files, with
# firmware/node_main.py as main.py and CONFIG (node.json, a node config) as config.json.
ROLE ?= agent
FIRMWARE_MANIFEST = $(if $(filter bridge,$(ROLE)),bridge_manifest.py,manifest.py)
CONFIG_bridge = gateway.json
CONFIG_node = node.json
CONFIG ?= $(or $(CONFIG_$(ROLE)),$(CONFIG_$(BOARD)),config.json)
MAIN_PY = $(if $(filter node,$(ROLE)),firmware/node_main.py,firmware/main.py)
WIFI ?= wifi.json
# The board's config "tasks_dir".
TASKS_DIR ?= tasks
VBOARD_FS ?= var/vboard
VBOARD_PTY ?= var/vboard.pty
# A micropython checkout, for `make firmware`; the port's own make is run as $(SUBMAKE), not
# $(MAKE), so that `make -n firmware` only prints it.
MICROPY_DIR ?=
SUBMAKE ?= make
MYPY ?= $(VENV)/bin/mypy
STUBS ?= build/stubs

# Bootloader offset of the combined image: 0x1000 on classic ESP32 and S2, 0 on S3/C3/C6.
FLASH_OFFSET_esp32 = 0x1000
FLASH_OFFSET_esp32s2 = 0x1000
FLASH_OFFSET_esp32s3 = 0x0
FLASH_OFFSET_esp32c3 = 0x0
FLASH_OFFSET_esp32c6 = 0x0
FLASH_OFFSET ?= $(FLASH_OFFSET_$(CHIP))

# micropython/ports/<dir> and BOARD=<name> for `make firmware`; FIRMWARE is what `make flash` writes.
PORT_DIR_esp32 = esp32
PORT_DIR_rp2 = rp2
MICROPY_BOARD_esp32 = ESP32_GENERIC
MICROPY_BOARD_esp32s2 = ESP32_GENERIC_S2
MICROPY_BOARD_esp32s3 = ESP32_GENERIC_S3
MICROPY_BOARD_esp32c3 = ESP32_GENERIC_C3
MICROPY_BOARD_esp32c6 = ESP32_GENERIC_C6
MICROPY_BOARD_rp2 = RPI_PICO_W
MICROPY_BOARD ?= $(if $(filter esp32,$(BOARD)),$(MICROPY_BOARD_$(CHIP)),$(MICROPY_BOARD_$(BOARD)))
FIRMWARE_EXT_esp32 = bin
FIRMWARE_EXT_rp2 = uf2
FIRMWARE ?= build/$(BOARD)/firmware.$(FIRMWARE_EXT_$(BOARD))
RP2_DRIVE ?= $(firstword $(wildcard /media/*/RPI-RP2 /run/media/*/RPI-RP2 /media/RPI-RP2))

# deploy and task-upload end with mpremote's `reset` (machine.reset(), a hard reset; the virtual board
# has one too), so boot.py and main.py bring the agent back: mpremote's Ctrl-C stopped it, and the agent
# recovers its identity from flash and re-registers. They copy with `resume` (no soft reset first): on
# a real board the watchdog the agent armed survives a soft reset, but the timer main.py set up to feed
# it after Ctrl-C does not, so a soft reset would let the watchdog reset the board mid-copy.

# --- one check for every target that uses BOARD ------------------------------------------------
# An unknown BOARD stops here, before anything runs (a dry run too), with the same line for each.
BOARDS = esp32 rp2 unix
comma = ,
BOARD_GOALS = deploy deploy-check task-upload repl flash flash-% firmware sim board mpy mpy-board
ifneq ($(filter $(BOARD_GOALS),$(MAKECMDGOALS)),)
ifeq ($(and $(filter 1,$(words $(BOARD))),$(filter $(BOARDS),$(BOARD))),)
$(error unknown BOARD=$(BOARD): the boards are $(subst $(eval) ,$(comma) ,$(BOARDS)) (boards/<name>/))
endif
endif

# --- helpers -----------------------------------------------------------------------------------
# `make -n` prints the commands without the checks, so a dry run works with no board attached.
DRYRUN = $(findstring n,$(firstword -$(MAKEFLAGS)))
# $(call need,value,message): stop with that one line unless value is non-empty (skipped for -n).
need = $(if $(DRYRUN),,$(if $(strip $(1)),,$(error $(2))))
no_port_unix = no virtual board at PORT=$(PORT): start one with `make board` (it prints its pty) and pass PORT=<that pty>
no_port = $(if $(no_port_$(BOARD)),$(no_port_$(BOARD)),no board at PORT=$(PORT): plug it in and pass PORT=/dev/ttyUSB0 or /dev/ttyACM0 (see ls /dev/tty{USB$(comma)ACM}*))
is_ident = $(shell printf '%s' '$(1)' | grep -Eq '^[A-Za-z_][A-Za-z0-9_]*$$' && echo y)

# Device-side one-liner: make each directory unless it exists (os.makedirs is not on boards).
mkdirs_py = import os;m=lambda d:d.split('/')[-1] in os.listdir(*d.split('/')[:-1]) or os.mkdir(d);[m(d) for d in ($(foreach d,$(1),'$(d)',))]

# What `deploy` puts on the board: compiled lib/ and board module, then sources boot.py/main.py
# (a board runs those two by file name) and the config.
# Of lib/, not enums.py (message and enum names for tools and tests: the agent and the node read schema's numbers)
# nor mgateway/ (a gateway runs on a host, or frozen into the ESP32 bridge's firmware); for the agent, nor the node's
# and the link's modules (it imports none): tools/deploy.py on_a_board().
DEPLOY_PY = $(filter-out lib/mgateway/% lib/micromesos/enums.py \
	$(if $(filter agent,$(ROLE)),lib/micromesos/node% lib/micromesos/link%),$(LIB_PY))
LIB_MPY = $(patsubst lib/%.py,build/$(BOARD)/%.mpy,$(sort $(DEPLOY_PY)))
LIB_DIRS = $(sort lib $(patsubst %/,%,$(dir $(DEPLOY_PY))))
BOARD_MPY = build/$(BOARD)/board.mpy
DEPLOY_COPY = $(foreach f,$(LIB_MPY),+ cp $(f) :lib/$(patsubst build/$(BOARD)/%,%,$(f))) \
	+ cp build/$(BOARD)/micromesos/logtext.txt :lib/micromesos/logtext.txt \
	+ cp $(BOARD_MPY) :board.mpy + cp firmware/boot.py :boot.py + cp $(MAIN_PY) :main.py \
	+ cp $(CONFIG) :config.json $(if $(filter unix,$(BOARD)),,$(if $(wildcard $(WIFI)),+ cp $(WIFI) :wifi.json))

TASK_NAME = $(basename $(notdir $(TASK)))
TASK_MPY = build/$(BOARD)/tasks/$(TASK_NAME).mpy

.PHONY: flash flash-esp32 flash-rp2 flash-unix deploy deploy-check task-upload repl board firmware typecheck mpy-board package-json

# --- cross-compiling: the Makefile's `mpy` covers lib/; boards/ and firmware/ are added here ---
mpy: mpy-board
mpy-board: venv
	@mkdir -p build/$(BOARD)/firmware
	$(MPY_CROSS) -march=$(MPY_ARCH) -O3 -s board -o $(BOARD_MPY) boards/$(BOARD)/board.py
	@set -e; for f in boot main; do \
		$(MPY_CROSS) -march=$(MPY_ARCH) -O3 -s $$f.py -o build/$(BOARD)/firmware/$$f.mpy firmware/$$f.py; \
	done

# --- flashing a board --------------------------------------------------------------------------
flash: flash-$(BOARD)

flash-esp32:
	$(call need,$(wildcard $(PORT)),$(no_port))
	$(call need,$(FLASH_OFFSET),unknown CHIP=$(CHIP) (esp32, esp32s2, esp32s3, esp32c3, esp32c6))
	$(call need,$(wildcard $(FIRMWARE)),no firmware at FIRMWARE=$(FIRMWARE): build it with `make firmware BOARD=esp32 MICROPY_DIR=...` or pass FIRMWARE=<a .bin from micropython.org>)
	$(ESPTOOL) --chip $(CHIP) --port $(PORT) --baud $(BAUD) erase-flash
	$(ESPTOOL) --chip $(CHIP) --port $(PORT) --baud $(BAUD) write-flash -z $(FLASH_OFFSET) $(FIRMWARE)
	sleep 3  # first boot formats the filesystem
	$(MAKE) --no-print-directory deploy BOARD=$(BOARD) PORT=$(PORT)

flash-rp2:
	$(call need,$(wildcard $(FIRMWARE)),no firmware at FIRMWARE=$(FIRMWARE): build it with `make firmware BOARD=rp2 MICROPY_DIR=...` or pass FIRMWARE=<a .uf2 from micropython.org>)
	$(call need,$(RP2_DRIVE),no RPI-RP2 drive mounted: hold BOOTSEL while plugging the Pico in (or copy $(FIRMWARE) onto the drive yourself), then run `make deploy BOARD=rp2`)
	cp $(FIRMWARE) $(RP2_DRIVE)/
	sleep 5  # the Pico reboots into MicroPython and its USB serial port comes up
	$(MAKE) --no-print-directory deploy BOARD=$(BOARD) PORT=$(PORT)

flash-unix:
	$(error BOARD=unix has no flash: start a virtual board with `make board`, then `make deploy BOARD=unix`)

# --- putting the agent on a running board ----------------------------------------------------
# Checks first (prerequisites run left to right), so nothing is compiled for a missing board.
# ROLE=bridge: the gateway and the agent are in the firmware; only its main.py, config and Wi-Fi go over.
BRIDGE_COPY = cp firmware/gateway_main.py :main.py + cp $(CONFIG) :gateway.json \
	$(if $(wildcard $(WIFI)),+ cp $(WIFI) :wifi.json)
ifeq ($(ROLE),bridge)
deploy: deploy-check
	$(strip $(MPREMOTE) connect $(PORT) resume $(BRIDGE_COPY) + reset)
else
deploy: deploy-check mpy
	$(strip $(MPREMOTE) connect $(PORT) resume exec "$(call mkdirs_py,$(LIB_DIRS) $(TASKS_DIR))" $(DEPLOY_COPY) + reset)
endif

deploy-check:
	$(call need,$(wildcard $(PORT)),$(no_port))
	$(call need,$(filter agent bridge node,$(ROLE)),unknown ROLE=$(ROLE) (agent; node for a node behind a gateway; bridge for an ESP32 gateway))
	$(call need,$(wildcard $(CONFIG)),no config at CONFIG=$(CONFIG): copy boards/$(BOARD)/$(if $(filter bridge,$(ROLE)),gateway,$(if $(filter node,$(ROLE)),node,config)).example.json to $(CONFIG) and set $(if $(filter node,$(ROLE)),"gateway" and "name","master"))

task-upload: venv
	$(call need,$(TASK),usage: make task-upload TASK=path/to/task.py BOARD=$(BOARD) PORT=$(PORT))
	$(call need,$(wildcard $(TASK)),no such file TASK=$(TASK))
	$(call need,$(call is_ident,$(TASK_NAME)),TASK=$(TASK): the file name must be a Python identifier (the task's module name))
	$(call need,$(wildcard $(PORT)),$(no_port))
	@mkdir -p build/$(BOARD)/tasks
	$(MPY_CROSS) -march=$(MPY_ARCH) -O3 -s $(TASK_NAME).py -o $(TASK_MPY) $(TASK)
	$(MPREMOTE) connect $(PORT) resume exec "$(call mkdirs_py,$(TASKS_DIR));'$(TASK_NAME).py' in os.listdir('$(TASKS_DIR)') and os.remove('$(TASKS_DIR)/$(TASK_NAME).py')" + cp $(TASK_MPY) :$(TASKS_DIR)/$(TASK_NAME).mpy + reset

repl:
	$(call need,$(wildcard $(PORT)),$(no_port))
	$(MPREMOTE) connect $(PORT) repl

# The virtual board: the unix port behind a pty (first output line: its path; also $(VBOARD_PTY)).
# DEVICE=loaded|frozen runs the 32-bit device model. Its heap (HEAPSIZE overrides): the one the tests
# hold the agent to on that interpreter, never below a real board's (tools/vboard.py default_heapsize).
board: venv $(DEVICE_DEP)
	$(VENV)/bin/python tools/vboard.py --fs $(VBOARD_FS) --link $(VBOARD_PTY) --device $(DEVICE) \
		$(if $(HEAPSIZE),--heapsize $(HEAPSIZE))

# --- frozen firmware, built by the port's own make (ESP-IDF or the Pico SDK toolchain needed) ---
firmware:
	$(call need,$(filter agent bridge node,$(ROLE)),unknown ROLE=$(ROLE) (agent; node for a node behind a gateway; bridge for an ESP32 gateway))
	$(call need,$(wildcard boards/$(BOARD)/$(FIRMWARE_MANIFEST)),BOARD=$(BOARD) has no $(ROLE) firmware (ROLE=bridge: BOARD=esp32))
	$(call need,$(PORT_DIR_$(BOARD)),BOARD=$(BOARD) has no firmware build (esp32, rp2); the unix port comes from .venv)
	$(call need,$(MICROPY_DIR),set MICROPY_DIR to a micropython checkout: make firmware BOARD=$(BOARD) MICROPY_DIR=~/src/micropython)
	$(call need,$(and $(wildcard $(MICROPY_DIR)/mpy-cross/Makefile),$(wildcard $(MICROPY_DIR)/ports/$(PORT_DIR_$(BOARD))/Makefile)),MICROPY_DIR=$(MICROPY_DIR) is not a micropython checkout (no mpy-cross/ and ports/$(PORT_DIR_$(BOARD))/ in it): git clone https://github.com/micropython/micropython and pass its path)
	$(call need,$(MICROPY_BOARD),unknown CHIP=$(CHIP) for BOARD=$(BOARD))
	$(if $(filter esp32,$(BOARD)),$(call need,$(shell command -v idf.py),ESP-IDF not found: run `. $$IDF_PATH/export.sh` first (idf.py must be on PATH)))
	$(if $(filter rp2,$(BOARD)),$(call need,$(shell command -v arm-none-eabi-gcc),arm-none-eabi-gcc not found: the rp2 port needs the Arm GNU toolchain and cmake (apt-get install gcc-arm-none-eabi cmake)))
	$(SUBMAKE) -C $(MICROPY_DIR)/mpy-cross
	$(SUBMAKE) -C $(MICROPY_DIR)/ports/$(PORT_DIR_$(BOARD)) BOARD=$(MICROPY_BOARD) submodules
	$(SUBMAKE) -C $(MICROPY_DIR)/ports/$(PORT_DIR_$(BOARD)) BOARD=$(MICROPY_BOARD) FROZEN_MANIFEST=$(abspath boards/$(BOARD)/$(FIRMWARE_MANIFEST))
	mkdir -p build/$(BOARD)
	cp $(MICROPY_DIR)/ports/$(PORT_DIR_$(BOARD))/build-$(MICROPY_BOARD)/firmware.$(FIRMWARE_EXT_$(BOARD)) $(FIRMWARE)

# --- static check of device code against each port's stubs (pinned in boards/<b>/stubs.txt) ---
$(STUBS)/%/.stamp: boards/%/stubs.txt | venv
	rm -rf $(STUBS)/$*
	$(VENV)/bin/pip install -q --disable-pip-version-check --no-compile --target $(STUBS)/$* -r $<
	touch $@

TYPECHECK_BOARDS ?= esp32 rp2
TYPECHECK_FILES ?= lib/micromesos lib/mgateway firmware/main.py firmware/boot.py firmware/node_main.py \
	firmware/gateway_main.py
MYPY_FLAGS ?=
typecheck: venv $(foreach b,$(TYPECHECK_BOARDS),$(STUBS)/$(b)/.stamp)
	@rc=0; for b in $(TYPECHECK_BOARDS); do \
		echo "typecheck: $(TYPECHECK_FILES) boards/$$b/board.py against the $$b port's stubs"; \
		MYPYPATH=lib:boards/$$b:firmware:$(STUBS)/$$b $(MYPY) --config-file mypy.ini \
			--custom-typeshed-dir $(STUBS)/$$b --cache-dir build/mypy-cache/$$b $(MYPY_FLAGS) \
			$(TYPECHECK_FILES) boards/$$b/board.py || rc=1; \
	done; exit $$rc

# lib/package.json (for mip) regenerated from the files in lib/micromesos.
package-json:
	$(PYTHON) tools/deploy.py package-json
