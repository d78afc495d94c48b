# Fresh-machine entry points (see README.md): `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test test-full bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

# Compile the corpus MLP to a native library and run it from C++.
demo: $(STAMP)
	$(MAKE) -C examples PY=$(abspath $(PY)) run

# The test suite (CI runs this through .ci/run).
test: $(STAMP)
	$(PY) -m pytest -q -n 2 -p no:cacheprovider

# Everything, including the slow full AOT corpus harness.
test-full: $(STAMP)
	$(PY) -m pytest -q -n 2 -m '' -p no:cacheprovider

bench: $(STAMP)
	$(PY) -m bench

lint: $(STAMP)
	$(VENV)/bin/ruff check hlo compiler backends runtime tests bench tfcompile_cli.py

clean:
	rm -rf $(VENV) build *.egg-info
