# Two commands do everything on a fresh machine: `make probe` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: probe test typecheck bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# setuptools says "editable installation" as a warning, for information only: keep the install quiet.
	PYTHONWARNINGS="ignore:Editable installation" $(PY) -m pip install --quiet -e '.[test,cli,ray]'
	touch $(STAMP)

probe: $(STAMP)
	$(PY) -m leanworker probe

test: $(STAMP) typecheck
	$(PY) -m pytest -q

# mypy needs the package on a plain path; the checkout root is the package, so link it under its real name.
typecheck: $(STAMP)
	mkdir -p build/typecheck && ln -sfn ../.. build/typecheck/leanworker
	MYPYPATH=build/typecheck $(PY) -m mypy -p leanworker

# Benchmarks, by hand (never part of `make test`): figures and ratios against peers, saved under bench/results/.
bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,cli,ray,bench]'
	$(PY) -m bench.peers
	$(PY) -m bench.worker_runtime
	$(PY) -m bench.pool
	$(PY) -m bench.planner
	$(PY) -m bench.plan_run
	$(PY) -m bench.lean_check
	$(PY) -m bench.fuzz_dispatch
	$(PY) -m bench.scaleout

clean:
	rm -rf $(VENV) build *.egg-info
