# PlotGPT: `make run` trains and samples on the embedded corpus; `make test` runs the whole suite.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
# torch is pinned: on this project's machines the pin takes the local CPU wheel; on yours, the right build.
TORCH  ?= torch==2.13.0
MINUTES ?= 4
STAMP   = $(VENV)/.installed

.PHONY: install run test clean help

help:
	@echo "make run    - prepare the sample corpus, train the cpu preset for $(MINUTES) min, print 3 plots"
	@echo "make test   - install if needed, run the test suite"
	@echo "make clean  - remove data/prepared, checkpoints/* and caches (keeps .venv)"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check "$(TORCH)"
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[test]"
	@touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/plotgpt prepare data/sample/plots.txt --out data/prepared/sample --quiet
	$(BIN)/plotgpt train --data data/prepared/sample --preset cpu --max-minutes $(MINUTES) \
		--out checkpoints/sample-cpu --overwrite
	$(BIN)/plotgpt generate --checkpoint checkpoints/sample-cpu --prompt "Title:" --num-samples 3 --seed 7
	@echo "outputs: data/prepared/sample/ (tokens, tokenizer), checkpoints/sample-cpu/ (best.safetensors,"
	@echo "         step-*.safetensors, loss.png, metrics.jsonl)"

test: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf data/prepared checkpoints/*/ .pytest_cache _build
