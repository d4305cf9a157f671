# callpulse: `make run` starts a local stack, `make test` runs the whole suite.
# Both install what they need first (a virtualenv in .venv; Debian packages when root).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: run test test-unit bench install system-deps generate clean help

help:
	@echo "make run       broker + worker + simulator, live metrics on http://127.0.0.1:6066/metrics"
	@echo "make test      the whole test suite (unit, integration on the embedded broker, e2e with Prometheus)"
	@echo "make test-unit unit tests only (no broker)"
	@echo "make bench     throughput, latency and memory benchmarks (writes .bench/results.json)"
	@echo "make generate  regenerate dashboards and alert rules from the metric catalogue"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -qq --disable-pip-version-check -e '.[test]'
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

install: $(STAMP)

system-deps:
	@scripts/install-system-deps.sh

run: $(STAMP)
	@$(PY) scripts/run_stack.py

test: $(STAMP) system-deps
	$(PY) -m pytest -q -p no:cacheprovider

test-unit: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider tests/unit

bench: $(STAMP)
	$(PY) -m benchmarks

generate: $(STAMP)
	$(PY) -m streams.observability generate

clean:
	rm -rf .run .bench .pytest_cache build *.egg-info
