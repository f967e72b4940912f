# janitor developer targets. Everything installs itself: `make test` on a fresh clone works.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DEMO   ?= demo-logs

.PHONY: install system-deps demo test bench safety lint clean screenshots

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# CPU build of torch first, so the range in pyproject never pulls a CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

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
test: install system-deps
	$(PY) -m pytest -q -n 3

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
