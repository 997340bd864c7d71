# Two commands do all set-up on a bare machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PACKAGES := af af_tasks solvers scorers training sae
SOURCES := $(shell find $(PACKAGES) -type f \( -name '*.py' -o -name '*.txt' -o -name '*.jsonl' -o -name '*.yaml' \) 2>/dev/null)
EMBEDDED_MODEL := smollm2-135m-instruct

.PHONY: setup model test demo experiment lint clean

# Dependencies: torch==2.13.0 first (the CPU build on disk) so that pip never pulls a CUDA build.
$(BIN)/.deps-installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q '.[dev]'
	touch $@

# The suite is installed as a regular (non-editable) package: Inspect only namespaces registry
# names (af_tasks/free_tier, scorers/compliance) for packages installed in site-packages.
$(BIN)/.suite-installed: $(BIN)/.deps-installed $(SOURCES)
	rm -rf build
	$(BIN)/python -m pip install -q --no-deps --force-reinstall .
	rm -rf build
	touch $@

setup: $(BIN)/.suite-installed

# Idempotent: verifies checksums when the model is already there.
model: setup
	$(BIN)/af models prepare $(EMBEDDED_MODEL)

lint: setup
	$(BIN)/ruff check .

test: model lint
	$(BIN)/pytest

demo: model
	$(BIN)/af demo

# The retention experiment at CPU size on the embedded model: trains its own attacker, then catches,
# retrains and measures (resumes if interrupted; see the README for its runtime and a GPU-trained attacker).
EXPERIMENT_ARGS ?= --rungs all --budgets 1,4,16 --seeds 0 --organism-requests 16 --catch-requests 16 \
	--measure-requests 12 --usefulness 12 --attacker-epochs 4 --test-attack-rate 0.15 --retrain-epochs 3 \
	--lr 1e-3 --lora-top-layers 8 --batch-size 8 --max-tokens 40
experiment: model
	$(BIN)/af experiment retention --out logs/retention-cpu $(EXPERIMENT_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
