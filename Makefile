# The quick-start commands: `make demo` and `make test`. Both set everything up first.
# `make test-full` is `make test` with the reliability suite at full scale: 100,000-mail
# campaigns instead of 5,000 (docs/reliability.md); the figures in the docs come from it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: setup demo test test-full bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

setup: $(BIN)/.installed

demo: setup
	$(BIN)/sendwell demo

test: setup
	bash scripts/test.sh

test-full: setup
	SENDWELL_RELIABILITY_RECIPIENTS=100000 bash scripts/test.sh

clean:
	rm -rf $(VENV) sendwell-demo .pytest_cache
