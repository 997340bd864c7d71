# Two commands do all set-up on a bare machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EMBEDDED_MODEL := smollm2-135m-instruct

.PHONY: setup model test demo experiment lint clean mutation mutation-sample

# Dependencies: torch==2.13.0 first (the CPU build on disk) so that pip never pulls a CUDA build.
# The suite itself is an editable install: an edit to any folder is live at once, and Inspect finds
# the same registry names (af_tasks/free_tier, af_tasks/compliance) as from a regular install.
# Re-run only when pyproject.toml changes (dependencies, entry points, the package-dir mapping).
$(BIN)/.suite-installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip uninstall -q -y af-organisms 2>/dev/null || true  # this suite's former name
	$(BIN)/python -m pip install -q -e '.[dev]'
	rm -rf build *.egg-info  # an egg-info here would shadow the install's metadata when run from this folder
	touch $@

setup: $(BIN)/.suite-installed

# Idempotent: verifies checksums when the model is already there.
model: setup
	$(BIN)/af models prepare $(EMBEDDED_MODEL)

lint: setup
	$(BIN)/ruff check .

# Two workers, each taking whole test files (a module's fixtures are built once): the suite took
# 16.1 min on 2 cores this way (1,654 tests, fresh clone); TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2
test: model lint
	$(BIN)/pytest $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

demo: model
	$(BIN)/af demo

# Mutation testing of the core readings (cosmic-ray, tests/mutation/; not part of CI): one session per
# module, one after another, in a scratch copy of the tree; each module's seeded sample size is in its
# TOML. `make mutation` writes tests/mutation/report.md and report.json; `make mutation-sample` runs
# MUTATION_SAMPLE (default 10) seeded mutants per module and prints the scores (~5 min on 2 cores).
MUTATION_SAMPLE ?= 10
mutation: setup
	nice -n 10 $(BIN)/python tests/mutation/run.py

mutation-sample: setup
	nice -n 10 $(BIN)/python tests/mutation/run.py --sample $(MUTATION_SAMPLE) --sessions tests/mutation/.sessions-sample --no-report

# The retention experiment at CPU size on the embedded model: trains its own attacker, then catches,
# retrains and measures (resumes if interrupted; see the README for its runtime and a GPU-trained attacker).
EXPERIMENT_ARGS ?= --rungs all --budgets 1,4,16 --seeds 0 --organism-requests 16 --catch-requests 16 \
	--measure-requests 12 --usefulness 12 --attacker-epochs 4 --test-attack-rate 0.15 --retrain-epochs 3 \
	--lr 1e-3 --lora-top-layers 8 --batch-size 8 --max-tokens 40
experiment: model
	$(BIN)/af experiment retention --out logs/retention-cpu $(EXPERIMENT_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
