# The project's single entry point. The README's two commands are `make demo`
# and `make test`; `.ci/run` runs `make test` on a fresh machine.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip

.PHONY: demo test e2e e2e-ceph install venv system-deps servers cinder-venv cinder-tests rust-test pytest stubtest typecheck bench bench-report clean

# Run the demo on the embedded SQLite default: no server, no Cinder install.
demo: install
	$(VENV)/bin/cinder-promote demo

# Everything the tests need, then every test: Rust, stubs, pytest on SQLite,
# PostgreSQL and MariaDB with Cinder 29.0.0's own schema, the workflow on a
# whole Cinder deployment (the e2e selection, which plain pytest leaves out),
# the fire drill on real Ceph storage (e2e-ceph), and Cinder's whole unit suite
# on the patched tree.
test: system-deps install rust-test stubtest typecheck cinder-venv
	@servers_env="$$(scripts/servers start)" || { echo "scripts/servers start failed" >&2; exit 1; }; \
	  eval "$$servers_env"; $(PY) -m pytest $(PYTEST_ARGS) && $(PY) -m pytest -m e2e tests/e2e $(PYTEST_ARGS)
	@$(MAKE) --no-print-directory e2e-ceph
	@$(MAKE) --no-print-directory cinder-tests

# The admin guide's story end to end on a real deployment (tests/e2e: RabbitMQ,
# cinder-api/scheduler/volume of the patched Cinder, the storage simulator).
e2e: system-deps install
	@servers_env="$$(scripts/servers start)" || { echo "scripts/servers start failed" >&2; exit 1; }; \
	  eval "$$servers_env"; $(PY) -m pytest -m e2e tests/e2e $(PYTEST_ARGS)

# Cinder 29.0.0's whole unit suite (stestr, 2 workers) on the patched tree,
# compared test by test with the pristine tree; each worker under a memory
# limit. CINDER_TESTS_ARGS=--pristine=full runs the pristine suite whole too
# (by default only the tests that did not pass on the patched tree).
cinder-tests: install
	$(PY) scripts/cinder-unit-suite $(CINDER_TESTS_ARGS)

venv:
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PIP) install -q --upgrade pip

# `pip install .` from the checkout: builds the Rust module with maturin and
# installs the package with its console script.
# Not quiet: the first build takes minutes, and pip's own lines show it working.
# Then the [mysql] extra (mysqlclient, the hook's fast MariaDB driver) from the installed package's
# metadata, when libmariadb's headers are there to build it (scripts/install-system-deps installs
# them for `make test`; `make demo` needs no server and goes without).
install: venv
	@echo "installing cinder-promote into $(VENV): the first time builds the Rust core with maturin (2-3 minutes)"
	$(PIP) install --progress-bar on ".[test]"
	@if pkg-config --exists libmariadb 2>/dev/null; then $(PIP) install --progress-bar on "cinder-promote[mysql]"; \
	  else echo "install: libmariadb-dev is not installed: without mysqlclient (the hook falls back to PyMySQL)"; fi

system-deps:
	scripts/install-system-deps

cinder-venv:
	scripts/cinder-venv

rust-test:
	cargo test --quiet
	@if cargo clippy --version >/dev/null 2>&1; then cargo clippy --quiet -- -D warnings; \
	  else echo "cargo clippy is not installed: skipped the lint (cargo test ran)"; fi

stubtest: install
	$(PY) -m mypy.stubtest cinder_promote._native

# The package's own annotations (py.typed: drivers import it), as pyproject's [tool.mypy] says.
typecheck: install
	$(PY) -m mypy

# The fire drill on real storage: three Ceph clusters (scripts/ceph) with RBD mirroring and
# Cinder's RBD driver patched with update_host_replication (tests/ceph); `make test` runs it too.
e2e-ceph: install
	scripts/install-system-deps --with-ceph
	@set -e; eval "$$(scripts/servers start)"; \
	  $(PY) -m pytest tests/ceph -m ceph -p no:cacheprovider $(PYTEST_ARGS)

# The benches (benches/, pytest-benchmark): never part of `make test`.
# bench-report also rewrites docs/benchmarks.md and its charts from the run.
bench: install cinder-venv
	@set -e; eval "$$(scripts/servers start)"; \
	  $(PY) -m pytest benches --benchmark-enable -p no:cacheprovider $(PYTEST_ARGS)

bench-report: install cinder-venv
	VENV=$(VENV) scripts/bench-report $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) target .cache cinder-promote-demo.sqlite
