# gradtrack: set-up and the two entry points of the README.
#   make test   create .venv (if needed), install pinned dependencies, run the test suite (CPU)
#   make demo   create .venv (if needed), run `gradtrack demo` on the embedded procedural sequence
# Only Python >= 3.11 is needed beforehand.  Override the interpreter with `make PYTHON=/path/to/python3.11`.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3 || command -v python)
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_VERSION := 2.13.0
# Extra pip options for torch only, e.g. TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
TORCH_PIP_ARGS ?=
STAMP := $(VENV)/.gradtrack-installed
REQ_TEST := $(wildcard requirements-test.txt)
PYTEST_ARGS ?=
DEMO_ARGS ?=

.PHONY: help venv .venv test demo lint clean-venv

help:
	@echo "make test   - set up $(VENV) and run the tests"
	@echo "make demo   - set up $(VENV) and run 'gradtrack demo'"
	@echo "make lint   - byte-compile everything (syntax check)"
	@echo "make clean-venv - remove $(VENV)"

venv .venv: $(STAMP)

# Re-installs whenever pyproject.toml, the constraints or the test requirements change.
$(STAMP): pyproject.toml constraints.txt $(REQ_TEST)
	@test -n "$(PYTHON)" || { echo "error: no python3.11 found; run make PYTHON=/path/to/python3.11" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || \
		{ echo "error: $(PYTHON) is Python < 3.11; run make PYTHON=/path/to/python3.11" >&2; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first and explicitly pinned: pip must never resolve an unpinned torch.
	$(PIP) install $(TORCH_PIP_ARGS) "torch==$(TORCH_VERSION)"
	$(PIP) install -c constraints.txt -e ".[test,vot,got10k,onnx]"
	@if [ -f requirements-test.txt ]; then \
		grep -vE '^\s*#|^\s*$$' requirements-test.txt | grep -E '#\s*no-deps' | sed -E 's/\s*#.*$$//' > $(VENV)/.req-nodeps.txt; \
		grep -vE '#\s*no-deps' requirements-test.txt > $(VENV)/.req-deps.txt; \
		if grep -qvE '^\s*(#|$$)' $(VENV)/.req-deps.txt; then \
			echo "$(PIP) install -c constraints.txt -r $(VENV)/.req-deps.txt"; \
			$(PIP) install -c constraints.txt -r $(VENV)/.req-deps.txt || exit 1; \
		fi; \
		if [ -s $(VENV)/.req-nodeps.txt ]; then \
			echo "$(PIP) install --no-deps -c constraints.txt -r $(VENV)/.req-nodeps.txt"; \
			$(PIP) install --no-deps -c constraints.txt -r $(VENV)/.req-nodeps.txt || exit 1; \
		fi; \
	fi
	$(PY) -c 'import torch; assert torch.__version__.split("+")[0] == "$(TORCH_VERSION)", torch.__version__'
	touch $(STAMP)

test: $(STAMP)
	@$(PY) -m pytest tests -q -rfEs -p no:cacheprovider --durations=15 $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests (exit status 5); that counts as a failure" >&2; fi; \
	exit $$rc

demo: $(STAMP)
	$(VENV)/bin/gradtrack demo $(DEMO_ARGS)

lint: $(STAMP)
	$(PY) -m compileall -q src tests

clean-venv:
	rm -rf $(VENV)
