# Two commands matter: `make demo` and `make test`. Both create .venv and install the project first,
# with the exact versions and hashes in requirements.lock (`make lock` refreshes it from pyproject's ranges).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
UV_VERSION := 0.13.9

.PHONY: demo test test-latest bench soak parity install lock clean

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --require-hashes --no-deps -r requirements.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/pushstream demo

# The code is checked (ruff, mypy: configured in pyproject.toml) before the suite runs, in two
# processes: most of its time is waiting on brokers and workers.
test: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -q -n 2 --dist loadgroup

bench: $(VENV)/.installed
	$(PY) bench/run.py

# Faults for minutes, not in `make test`: the crash scenarios on 20,000 events, 10 times each,
# then 15 minutes at 200 events/s with a fault (kill -9, SIGTERM, 503/429 bursts, a frozen broker) each minute.
soak: $(VENV)/.installed
	$(PY) bench/soak.py --matrix --repeat 10
	$(PY) bench/soak.py --minutes 15

# Our requests vs Segment's engine on a generated corpus (needs Node/npm and ../shared/oracle).
parity: $(VENV)/.installed
	$(PY) bench/parity.py

# Exact versions (with hashes, for every platform) plus the build backend: requirements.lock for
# `.[dev]` (make install, CI), requirements-runtime.lock for the worker image (Dockerfile).
LOCK = .venv-lock/bin/uv pip compile pyproject.toml - --universal --python-version 3.11 --generate-hashes -q
lock:
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install -q uv==$(UV_VERSION)
	printf 'setuptools>=77\n' | $(LOCK) --extra dev -o requirements.lock
	printf 'setuptools>=77\n' | $(LOCK) -c requirements.lock -o requirements-runtime.lock  # the same versions
	rm -rf .venv-lock

# The suite on the newest versions pyproject allows (what a library user may get), in a venv of its own.
test-latest:
	rm -rf .venv-latest
	$(PYTHON) -m venv .venv-latest
	.venv-latest/bin/python -m pip install -q --upgrade pip
	.venv-latest/bin/python -m pip install -q --upgrade -e '.[dev]'
	PUSHSTREAM_TEST_LATEST=1 .venv-latest/bin/python -m pytest -q -n 2 --dist loadgroup

clean:
	rm -rf $(VENV) .venv-latest .venv-lock *.egg-info .pytest_cache bench/results
