# Set-up and checks. `make demo` and `make test` work on a fresh machine.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch first: 2.13.0 is the offline CPU build; a torch already in the venv is kept.
TORCH_SPEC ?= torch==2.13.0
# The demo finds yolox-nano in ../shared/weights when that folder is beside the checkout.
ifneq ($(wildcard ../shared/weights/yolox_nano.pth),)
export STREAMYOLOX_WEIGHTS_DIR ?= $(abspath ../shared/weights)
endif

.PHONY: venv install demo test lint clean bench

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

venv: $(BIN)/python

install: venv
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[test]"
	@# bytecode now, as a wheel install does: an editable install compiles on import, and where
	@# PYTHONDONTWRITEBYTECODE is set it never keeps it (0.1 s more on each `streamyolox run`'s start-up)
	$(BIN)/python -m compileall -q streamyolox trainer

demo: install
	$(BIN)/streamyolox run pipelines/demo.yaml
	@echo "detections: out/demo.jsonl"

test: install
	$(BIN)/ruff check streamyolox trainer tests benchmarks examples scripts
	$(BIN)/mypy  # streamyolox + trainer ([tool.mypy] in pyproject.toml)
	$(BIN)/python -m pytest -q -rs tests

bench: install  # side-by-side CPU benchmark -> benchmarks/results/, benchmarks/README.md
	PY=$(BIN)/python benchmarks/run_all.sh

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info
