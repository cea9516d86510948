# Two entry points (see README): `make demo` and `make test`. Both create the
# pinned environment in $(VENV) on first use and reuse it afterwards.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PACKAGES := packages/magic-datasets packages/magic-core packages/magic-unlearn packages/torch-dtensor-patch tools
STAMP := $(VENV)/.installed
DEMO_OUT ?= runs/demo

.PHONY: setup demo test test-fast torch-matrix lint docs bench bench-unlearn clean

setup: $(STAMP)

# requirements.lock pins every third-party package (torch 2.13.0 CPU included);
# --no-deps keeps bergson's unused torchvision/torchaudio/bitsandbytes out, so
# pip can never swap the torch build.
$(STAMP): requirements.lock $(addsuffix /pyproject.toml,$(PACKAGES))
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --disable-pip-version-check --no-deps -r requirements.lock
	$(PIP) install -q --disable-pip-version-check --no-deps --no-build-isolation $(addprefix -e ,$(PACKAGES))
	$(PY) -m pip check --disable-pip-version-check | grep -v -E "^bergson .* requires (torchvision|torchaudio|bitsandbytes)" | grep . && exit 1 || true
	touch $(STAMP)

demo: setup
	$(VENV)/bin/magic demo --out $(DEMO_OUT)

# Every test of every package, then the torch-dtensor-patch suite against real
# torch releases (2.10.0, 2.11.0, 2.13.0) in cached venvs outside the repo.
test: setup
	$(PY) -m pytest -n auto
	python3 packages/torch-dtensor-patch/scripts/torch_matrix.py

test-fast: setup
	$(PY) -m pytest -n auto -m "not slow"

# ruff, then mypy over every package's src (configured in pyproject.toml). Both
# always run, so one pass prints every problem as FILE:LINE; either failing fails.
lint: setup
	@status=0; \
	$(VENV)/bin/ruff check packages tools benchmarks examples || status=1; \
	$(VENV)/bin/mypy || status=1; \
	exit $$status

# The job-file reference in docs/ (configuration.md, unlearning.md, cluster.md),
# regenerated from the config dataclasses' field docstrings; a test fails when stale.
docs: setup
	$(PY) -m magic_driver.config_reference --write

bench: setup
	$(PY) benchmarks/attribution.py

# Issue 5's unlearning comparison on the built-in world (~15 min CPU).
bench-unlearn: setup
	$(PY) benchmarks/unlearn_frontier.py
	$(PY) benchmarks/unlearn_diagnosis.py

clean:
	rm -rf $(VENV) runs
