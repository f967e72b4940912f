# janitor developer targets. Everything installs itself: `make test` on a fresh clone works.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO   ?= demo-logs

.PHONY: install old-torch system-deps demo test bench safety lint clean screenshots

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# CPU build of torch first, so the range in pyproject never pulls a CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

# The oldest torch the trainers pin (RVC WebUI: torch = "^2.0.0"; Applio: 2.1.1, now 2.7.1), in
# a side venv: tests/test_torchfree.py loads janitor's torch-free small models with it too.
# On PyPI it is a CUDA build (~2.2 GB of wheels with the nvidia-*-cu11 ones; ~1 min here) that
# runs on the CPU; no numpy. It has wheels for Python 3.8-3.11 only (OLD_TORCH_PYTHON picks
# the interpreter). OLD_TORCH_PIP: extra pip options, e.g. --find-links to local wheels.
OLD_TORCH        := 2.0.0
OLD_TORCH_PYTHON ?= $(PYTHON)
OLD_TORCH_PIP    ?=
OLD_VENV         := .venv-torch$(OLD_TORCH)
OLD_PY           := $(OLD_VENV)/bin/python
OLD_STAMP        := $(OLD_VENV)/.installed

old-torch: $(OLD_STAMP)

$(OLD_STAMP):
	test -x $(OLD_PY) || $(OLD_TORCH_PYTHON) -m venv $(OLD_VENV)
	$(OLD_PY) -m pip install -q torch==$(OLD_TORCH) $(OLD_TORCH_PIP)
	$(OLD_PY) -W ignore -c 'import io, torch; b = io.BytesIO(); \
		torch.save({"w": torch.ones(2, dtype=torch.half)}, b); b.seek(0); \
		assert torch.__version__.split("+")[0] == "$(OLD_TORCH)", torch.__version__; \
		assert torch.load(b, weights_only=True)["w"].dtype == torch.half; \
		print("torch", torch.__version__, "loads weights-only")'
	touch $(OLD_STAMP)

demo: install
	rm -rf $(DEMO)
	$(PY) -m fixtures.gen demo $(DEMO)
	$(VENV)/bin/janitor scan $(DEMO)
	$(VENV)/bin/janitor prune $(DEMO) --keep-last 1 --dry-run
	$(VENV)/bin/janitor prune $(DEMO) --keep-last 1
	$(VENV)/bin/janitor extract-small $(DEMO)/alice/G_1000.pth --skip-existing
	$(VENV)/bin/janitor scan $(DEMO)

# Debian packages the tests use (strace: a kill at one exact system call in the full-disk
# tests; chromium and its driver: the browser suite of the web page); installed as root when
# missing, as CI runs on a fresh machine. Each is COMMAND or COMMAND:PACKAGE.
SYSTEM_DEPS := strace chromium chromedriver:chromium-driver

system-deps:
	@missing=""; for d in $(SYSTEM_DEPS); do c=$${d%%:*}; p=$${d#*:}; \
		command -v $$c >/dev/null || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

# Three workers on two cores: most tests wait on child processes, sleeps and the disk.
# JANITOR_OLD_TORCH: the old torch's python (tests/test_torchfree.py loads files with it).
test: install old-torch system-deps
	JANITOR_OLD_TORCH=$(CURDIR)/$(OLD_PY) $(PY) -m pytest -q -n 3

# A PNG of each state of the web page (tests/test_ui_browser.py) into docs/img/.
screenshots: install system-deps
	JANITOR_SCREENSHOTS=docs/img $(PY) -m pytest -q tests/test_ui_browser.py

bench: install
	$(PY) bench/run.py

# Regenerates the Safety table in docs/safety.md from the fault and adversarial-input suite.
safety: install
	mkdir -p build
	JANITOR_SAFETY_REPORT=build/safety.json $(PY) -m pytest -q -m safety
	$(PY) tools/safety_table.py build/safety.json docs/safety.md

LINTED := janitor tests fixtures tools bench

# ruff (style, bugs, py310 target) and vermin (the oldest Python the code runs on: 3.10).
lint: install
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/vermin --no-tips --violations --eval-annotations -t=3.10- $(LINTED)

clean:
	rm -rf $(DEMO) .pytest_cache build *.egg-info
