# tdsa: two commands do everything on a fresh machine.
#   make book   execute every notebook (profile cpu, embedded synthetic data) and build the HTML book
#   make test   unit/data/engine tests, notebooks in the smoke profile + nbval, book build, browser check
PYTHON ?= python3
# PyTorch's wheel index for torch and torchvision, installed before the rest when set. Empty
# (the default): PyPI's, whose Linux wheels bundle CUDA (a ~6 GB .venv). For a CPU-only
# laptop: make setup TORCH_INDEX=https://download.pytorch.org/whl/cpu  (about 1 GB).
TORCH_INDEX ?=
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup book test test-unit test-avx2 test-book bench gpu-check lint chromium clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(if $(TORCH_INDEX),$(PY) -m pip install --quiet torch torchvision --index-url $(TORCH_INDEX))
	$(PY) -m pip install --quiet -e '.[dev,book,gradcam]'
	touch $(STAMP)

book: setup
	$(PY) book/_tools/build.py --profile cpu

test: test-unit test-avx2 test-book

test-unit: setup
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest tests --ignore=tests/notebooks

# The numerics-sensitive tests (engine, losses, precision) again on AVX2 kernels, which a CPU
# without AVX-512 runs: a tolerance fitted to one kernel family fails here on any machine.
# Where AVX-512 is not this CPU's (an AVX2-only CPU, ARM), the first pass was already that run.
AVX2_ENV := ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2
NUMERICS_TESTS := tests/engine tests/unit/test_losses.py tests/unit/test_precision.py \
                  tests/unit/test_models.py

test-avx2: setup
	@case "$$($(PY) -c 'import torch; print(torch.backends.cpu.get_cpu_capability())')" in \
	  AVX512*) echo "make: the numerics-sensitive tests again on AVX2 kernels ($(AVX2_ENV))"; \
	           $(AVX2_ENV) $(PY) -m pytest $(NUMERICS_TESTS) ;; \
	  *) echo "make: this CPU runs no AVX-512 kernels: the first pass ran the AVX2 ones" ;; \
	esac

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
