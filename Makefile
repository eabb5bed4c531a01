# `make run` and `make test` each work as the first command on a fresh machine:
# they create .venv and install the pinned dependencies when needed.
# The distribution's python3.11 when it can make a venv: Debian and Ubuntu build it with profile-guided
# and link-time optimization, which pyenv's default build lacks, and TensorFlow's Python-side graph
# tracing (most of the test suite's time) runs about 25% faster on it (README, "Setup").
SYSTEM_PYTHON := /usr/bin/python3.11
PYTHON ?= $(shell $(SYSTEM_PYTHON) -c "import ensurepip, venv" >/dev/null 2>&1 && echo $(SYSTEM_PYTHON) || echo python3.11)
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test test-fast install clean

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "dlsuite needs $(PYTHON) (Python 3.11) on PATH; set PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet --no-compile -c constraints.txt -e ".[test]"
	@# Bytecode for the installed packages, on every core: pip compiles file by file (about 40 s of
	@# the install here), and where PYTHONDONTWRITEBYTECODE is set nothing is cached at import time.
	@# A file that does not compile only costs speed, so it does not stop the install.
	-$(VENV)/bin/python -m compileall -q -j 0 $$($(VENV)/bin/python -c "import sysconfig; print(sysconfig.get_path('purelib'))") >/dev/null
	touch $(STAMP)

install: $(STAMP)

# Train, evaluate and export every task on its embedded offline default; print one summary table.
run: $(STAMP)
	$(VENV)/bin/dlsuite run all

# One pytest-xdist worker per core; a test file stays on one worker, so its module fixtures run once.
PARALLEL := -n auto --dist loadfile

# The whole suite, slow tests included (what CI runs).
test: $(STAMP)
	$(VENV)/bin/python -m pytest -m "slow or not slow" $(PARALLEL)

# The fast suite only (a developer's loop).
test-fast: $(STAMP)
	$(VENV)/bin/python -m pytest $(PARALLEL)

clean:
	rm -rf $(VENV) runs .pytest_cache
