# Two entry points for a fresh machine: `make demo` (main job) and `make test`.
# Both create .venv inside the project and install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU build of torch; any other version pulls gigabytes of CUDA wheels.
TORCH_SPEC ?= torch==2.13.0

.PHONY: demo test bench venv clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/activate pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(BIN)/asdlab demo

test: venv
	$(BIN)/python -m pytest -n 2 -q

clean:
	rm -rf $(VENV) runs
