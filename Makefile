# Two commands do everything on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# torch first and pinned: a CPU build is served for this version; GPU users keep their own.
TORCH  ?= torch==2.13.0

.PHONY: demo demo-conditional test test-fast test-browser gpu-check lint clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The demo needs the package and TensorBoard; the tests add their tools (ONNX, notebooks,
# linters), about 20 s more to install that `make demo` does not wait for.
$(VENV)/.installed: $(BIN)/activate pyproject.toml
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ".[tensorboard]"
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

demo: $(VENV)/.installed
	$(BIN)/dcgan train --config configs/demo.yaml --out runs/demo --tensorboard

# The same recipe, class-conditional: one row per digit in the previews.
demo-conditional: $(VENV)/.installed
	$(BIN)/dcgan train --config configs/demo-conditional.yaml --out runs/demo-conditional

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q

# The edit-test loop: every test but those marked slow (over about a second each: training
# runs, resumes, subprocesses, torchrun, pages), under a minute on 2 cores. `make test` runs all.
test-fast: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q -m "not slow"

# The pages checked in headless Chromium (`dcgan report`, `dcgan serve` through Playwright);
# skipped where no chromium is found (apt-get install chromium).
test-browser: $(VENV)/.installed-test
	$(BIN)/pip install --quiet -e ".[test,browser]"
	$(BIN)/python -m pytest -q -m browser

# On a machine with a CUDA GPU: the cuda tests, speed against the reference loop, GPU memory,
# the demo trained there and FID on the GPU against the CPU (gpu-check/gpu-check.md; ~6 min).
gpu-check: $(VENV)/.installed-test
	$(BIN)/python benchmarks/gpu_check.py --out gpu-check

# Style, the import contract (pyproject's [tool.importlinter]) and the size limits.
lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests tools benchmarks
	$(BIN)/ruff format --check src tests tools benchmarks
	$(BIN)/lint-imports
	$(BIN)/python tools/check_layout.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
