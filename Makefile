VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
OUT ?= demo_out
BENCH_ARGS ?=

.PHONY: setup demo test bench lint clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install torch==2.13.0
	$(PIP) install -e '.[dev]'
	touch $(VENV)/.installed

setup: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/clippings demo --out $(OUT)

test: $(VENV)/.installed
	sh scripts/install-test-deps.sh
	$(PY) -m pytest -q

bench: $(VENV)/.installed
	$(PY) -m bench $(BENCH_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check clippings jobs tests bench

clean:
	rm -rf $(VENV) $(OUT)
