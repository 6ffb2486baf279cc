# tinyshare: two commands on a fresh machine, `make demo` and `make test`.
# Each creates .venv and installs the pinned set (requirements.lock) when needed.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
CONFIG ?= configs/digits.toml

TS     := $(VENV)/bin/tinyshare

.PHONY: demo test test-long install clean boards boards-list bench bench-pipeline profile bench-emulation bench-generated-c arm-tools

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip==26.3"
	$(PY) -m pip install --quiet -c requirements.lock -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# Emulated ARM runs need qemu-user-static: installed here when running as root,
# otherwise one line says what to run.
QEMU := /usr/bin/qemu-aarch64-static
$(QEMU):
	@if [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static >/dev/null; \
	else \
		echo "tinyshare: emulated boards need qemu-user-static: run 'sudo apt-get install qemu-user-static', then retry" >&2; exit 2; \
	fi

# Cortex-M builds of the generated C (tests/codegen/test_cortex_m.py) need the arm-none-eabi
# toolchain with newlib (semihosting) and qemu-system-arm: installed here when running as
# root, otherwise one line says what to run.
ARM_GCC    := /usr/bin/arm-none-eabi-gcc
ARM_NEWLIB := /usr/lib/arm-none-eabi/newlib/rdimon.specs
QEMU_ARM   := /usr/bin/qemu-system-arm
$(ARM_GCC) $(ARM_NEWLIB) $(QEMU_ARM):
	@if [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm >/dev/null; \
	else \
		echo "tinyshare: Cortex-M builds need gcc-arm-none-eabi, libnewlib-arm-none-eabi and qemu-system-arm: run 'sudo apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm', then retry" >&2; exit 2; \
	fi

# The report.html render test needs Debian's chromium (headless): installed here when
# running as root; otherwise one line says what to run and that test is skipped.
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "tinyshare: the report render test is skipped without chromium: run 'sudo apt-get install chromium' to run it" >&2; \
	fi

# The demo's MCU boards also build and run their generated C: the arm tools come first
# (installed as root; otherwise one line says what to run and the report says why not).
demo: $(STAMP)
	@$(MAKE) --no-print-directory arm-tools || true
	$(VENV)/bin/tinyshare run $(CONFIG)

test: $(STAMP) $(QEMU) $(ARM_GCC) $(ARM_NEWLIB) $(QEMU_ARM) $(CHROMIUM)
	$(PY) -m pytest

# The end-to-end runs of a minute or more each (marked `long`): every zoo model's generated
# C on the three Cortex-M cores, determinism, interrupt and resume. CI runs them after
# `make test`.
test-long: $(STAMP) $(QEMU) $(ARM_GCC) $(ARM_NEWLIB) $(QEMU_ARM)
	$(PY) -m pytest -m long

# Per-board targets come from the board registry through pattern rules, so a new board
# file needs no Makefile edit. Each maps onto one tinyshare command:
#   make export-<board>    tinyshare run $(CONFIG) --board <board>
#                          (deployable files + example script + report in runs/<run>/<board>/)
#   make validate-<board>  the same run plus the emulated on-device check of that board
#   make boards            one run over every board in the registry, Linux boards emulated
#                          an MCU board's folder also holds its generated C (c/), so its
#                          export first installs the arm tools (as root; otherwise the
#                          report says why the C was not built)
export-%: $(STAMP)
	@if $(TS) boards list --names --os baremetal | grep -qx '$*'; then \
		$(MAKE) --no-print-directory arm-tools || true; fi
	$(TS) run $(CONFIG) --board $*

arm-tools: $(ARM_GCC) $(ARM_NEWLIB) $(QEMU_ARM)

validate-%: $(STAMP) $(QEMU)
	$(TS) run $(CONFIG) --board $* --set validation.emulate=true

boards: $(STAMP) $(QEMU)
	$(TS) run $(CONFIG) --set validation.emulate=true \
		$(foreach b,$(shell $(TS) boards list --names),--board $(b))

# The benchmark suite: shared-layer speed, pipeline time per stage, emulated throughput,
# footprint per zoo model, generated C against TFLM. Writes benchmarks/results/<date>.{json,md}.
bench: $(STAMP) $(QEMU) $(ARM_GCC) $(ARM_NEWLIB) $(QEMU_ARM)
	$(PY) benchmarks/bench.py

# Where the demo's time goes: a pyinstrument profile of a fresh run (runs/profile-demo.html).
profile: $(STAMP)
	mkdir -p runs
	$(PY) -m pip install --quiet -c requirements.lock -e ".[profile]"
	$(PY) -m pyinstrument -r html -o runs/profile-demo.html -m tinyshare run $(CONFIG) --fresh \
		--set 'output_dir="runs/profile"'
	@echo "profile: runs/profile-demo.html"

# digits.toml end to end per stage, emulated throughput per board and runtime, resume.
bench-pipeline bench-emulation: $(STAMP) $(QEMU) $(ARM_GCC) $(ARM_NEWLIB) $(QEMU_ARM)
	$(PY) benchmarks/pipeline_time.py

# Generated C against TFLM per zoo model and Cortex-M core (flash and RAM ratios, bit-exact).
bench-generated-c: $(STAMP) $(ARM_GCC) $(ARM_NEWLIB) $(QEMU_ARM)
	$(PY) benchmarks/generated_c.py

boards-list: $(STAMP)
	$(TS) boards list

clean:
	rm -rf runs .pytest_cache
