# The README's commands. Everything installs into .venv in the repo root.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# torch's CPU build: a local wheel if pip is configured with one (find-links), otherwise PyTorch's CPU index.
# Never plain PyPI: on Linux that resolves to a multi-GB CUDA build.
TORCH := torch==2.13.0+cpu
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: static install install-test install-train install-browser run test test-fast lint bench zoo clean lock docker-test

$(PY):
	$(shell command -v $(PYTHON) || echo python3) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml requirements.lock | $(PY)
	$(PIP) install --quiet --no-deps --no-index $(TORCH) 2>/dev/null || $(PIP) install --quiet $(TORCH) --index-url $(TORCH_INDEX)
	$(PIP) install --quiet -c requirements.lock -e .
	touch $@

# The pages' modules bundled and Plotly's partial bundle (only the trace types the app draws), into static/build/
# by tools/bundle.mjs with esbuild, both from the npm registry (package-lock.json): a cold visit of a page loads
# about 12 files and 0.6 MB instead of 45 and 1.5 MB. Needs Node.js and npm (nothing of them runs with the server);
# without them the server serves the modules one by one and Plotly's full bundle, and its log says so.
STATIC_SOURCES := $(shell find static/js templates tools \( -name '*.js' -o -name '*.mjs' -o -name '*.html' \) 2>/dev/null)
static/build/manifest.json: package.json package-lock.json $(STATIC_SOURCES)
	@if command -v npm >/dev/null 2>&1; then \
	  npm ci --no-audit --no-fund --loglevel=error && node tools/bundle.mjs; \
	else \
	  echo "npm is missing: the pages' modules are served unbundled (install Node.js and npm to bundle them)"; \
	fi

static: static/build/manifest.json

install: $(VENV)/.installed static/build/manifest.json

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install --quiet -c requirements.lock -e '.[test]'
	touch $@

install-test: $(VENV)/.installed-test

# What training needs beyond the server: num2words writes the numbers task's data, music21 ships the melody
# task's folk songs and statsmodels the sunspots task's series. espeak-ng (Debian's) speaks the speech task's
# numbers: installed when missing and apt-get is usable as root, like chromium for the browser tests.
$(VENV)/.installed-train: $(VENV)/.installed
	$(PIP) install --quiet -c requirements.lock -e '.[train]'
	touch $@

install-train: $(VENV)/.installed-train
	@if ! command -v espeak-ng >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing espeak-ng for the speech task's data"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng >/dev/null; \
	  else \
	    echo "espeak-ng is missing: install it (apt-get install espeak-ng) to train the speech models"; \
	  fi; \
	fi

run: install
	$(VENV)/bin/unrolled serve --host $(HOST) --port $(PORT)

# The browser tests drive Debian's Chromium (Playwright never downloads a browser here), and the rooms' Redis
# tests Debian's redis-server. Installed when missing
# and apt-get is usable as root; otherwise say so (in CI the browser tests then fail rather than skip).
install-browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium for the browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "chromium is missing at /usr/bin/chromium: install it (apt-get install chromium) to run tests/browser"; \
	  fi; \
	fi
	@# Rooms past one server are tested on a real Redis (tests/web/test_rooms_redis.py): Debian's redis-server.
	@if ! command -v redis-server >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing redis-server for the rooms' Redis tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
	  else \
	    echo "redis-server is missing: install it (apt-get install redis-server) to run the rooms' Redis tests"; \
	  fi; \
	fi

test: install-test install-train install-browser
	$(PY) -m pytest -q

# The fast tier, for the edit-test loop: the engine, the wire and the API in-process. Not the browser, not a
# server or other process, not the zoo's measured lessons, not the slow ones (tests/conftest.py: TIERS).
test-fast: install-test install-train
	$(PY) -m pytest -q -m "not browser and not live and not claims and not slow"

lint: install-test
	$(VENV)/bin/ruff check app tests bench deploy
	$(VENV)/bin/ruff format --check app tests bench deploy
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

bench: install
	$(PY) -m bench.trace_speed
	$(PY) -m bench.seq2seq_speed

# Build the image and run it for real (docker, or podman where no Docker engine runs), then check it from outside.
docker-test: install-test
	deploy/docker-test.sh

zoo: install-train
	$(VENV)/bin/unrolled train all

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache test-output node_modules static/build

# Re-pin every installed version (after changing pyproject.toml's dependencies and running make install-test).
lock: install-test install-train
	{ head -n 2 requirements.lock; $(PIP) freeze --all --exclude-editable | grep -vE '^(unrolled|pip)=='; } > requirements.lock.new
	mv requirements.lock.new requirements.lock
