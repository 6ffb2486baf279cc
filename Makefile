# tinyshare: two commands on a fresh machine, `make demo` and `make test`.
# Each creates .venv and installs the pinned set (requirements.lock) when needed.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
CONFIG ?= configs/digits.toml

.PHONY: demo test install clean boards

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip==26.3"
	$(PY) -m pip install --quiet -c requirements.lock -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/tinyshare run $(CONFIG)

test: $(STAMP)
	$(PY) -m pytest

boards: $(STAMP)
	$(VENV)/bin/tinyshare boards list

clean:
	rm -rf runs .pytest_cache
