# tdsa: two commands do everything on a fresh machine.
#   make book   execute every notebook (profile cpu, embedded synthetic data) and build the HTML book
#   make test   unit/data/engine tests, notebooks in the smoke profile + nbval, book build, browser check
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup book test test-unit test-book bench gpu-check lint chromium clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,book,gradcam]'
	touch $(STAMP)

book: setup
	$(PY) book/_tools/build.py --profile cpu

test: test-unit test-book

test-unit: setup
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest tests --ignore=tests/notebooks

test-book: setup chromium
	$(PY) book/_tools/build.py --profile smoke
	$(PY) -m pytest tests/notebooks

bench: setup
	$(PY) -m tdsa bench --json _build/bench.json

# On a CUDA machine: the CUDA tests and the GPU benchmarks into results/ (at most 8 minutes,
# no download). Without CUDA the tests skip with a reason and the benchmarks dry-run on the CPU.
gpu-check: setup
	$(PY) -m tdsa.commands.gpu_check

chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "make: the browser check needs Debian's chromium: sudo apt-get install chromium" >&2; exit 1; fi; }

clean:
	rm -rf _build runs
