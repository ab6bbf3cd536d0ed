# PlotGPT: `make run` trains and samples on the embedded corpus; `make test` runs the whole suite.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
# torch is pinned: on this project's machines the pin takes the local CPU wheel; on yours, the right build.
TORCH  ?= torch==2.13.0
MINUTES ?= 4
STAMP   = $(VENV)/.installed
NOTEBOOKS = $(wildcard notebooks/[0-9][0-9]_*.py)

.PHONY: install run test bench lab book notebooks clean help

help:
	@echo "make run        prepare the sample corpus, train the cpu preset for $(MINUTES) min, print 3 plots"
	@echo "make test       install if needed, run the whole suite (pytest, nbval, book build, browser test)"
	@echo "make bench      throughput vs baseline loops + plots-bench v1 (10 min) -> bench/results/"
	@echo "make lab        open the notebooks in JupyterLab"
	@echo "make book       build the book (full-size execution) into _build/html"
	@echo "make notebooks  regenerate each .ipynb from its .py twin and execute it in place (full size)"
	@echo "make clean      remove data/prepared, checkpoints/*/ and build caches (keeps .venv)"

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

# Notebooks run in smoke mode under a throw-away PLOTGPT_ROOT; nbval compares the cells marked
# NBVAL_CHECK_OUTPUT with the stored (full-size) outputs.
test: install
	PLOTGPT_SMOKE=1 PLOTGPT_ROOT=$$(mktemp -d) $(BIN)/python -m pytest -q \
		--nbval-lax --nbval-current-env -p no:cacheprovider tests notebooks

# Throughput against the baseline loops, then plots-bench v1 (needs ../shared/data; skips without it).
bench: install
	$(BIN)/plotgpt bench

lab: install
	$(BIN)/jupyter lab notebooks/

book: install
	$(BIN)/jupyter-book build . -W --all
	@echo "open _build/html/index.html"

notebooks: install
	$(BIN)/jupytext --to ipynb --update $(NOTEBOOKS)
	cd notebooks && for nb in $(notdir $(NOTEBOOKS:.py=.ipynb)); do \
		../$(BIN)/jupyter nbconvert --to notebook --execute --inplace $$nb --ExecutePreprocessor.timeout=1800 || exit 1; done

clean:
	rm -rf data/prepared checkpoints/*/ .pytest_cache _build tests/output bench/work
