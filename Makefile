# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DATA   ?= .footfall-data
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: run test lint bench clean system-deps
CHROMIUM ?= /usr/bin/chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.server-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[server]'
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[server,test]'
	touch $@

## run: install, load demo data on first run, serve the collector and dashboard
run: $(VENV)/.server-installed
	@test -f $(DATA)/footfall.duckdb || $(BIN)/footfall demo --data $(DATA)
	$(BIN)/footfall serve --data $(DATA) --host $(HOST) --port $(PORT)

## system-deps: Debian's Chromium (browser tests), nginx and Caddy (proxy config checks), ClickHouse (the
## ClickHouse store's tests), ZooKeeper (its cluster tests) and PostgreSQL (shared accounts), installed
## when missing
system-deps:
	@test -x $(CHROMIUM) || { command -v apt-get >/dev/null && apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "Chromium could not be installed: browser tests skip here (and fail under CI=true)."
	@{ { test -x /usr/sbin/nginx || command -v nginx; } && command -v caddy; } >/dev/null || \
	  { command -v apt-get >/dev/null && apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq --no-install-recommends nginx-light caddy >/dev/null; } || \
	  echo "nginx or Caddy could not be installed: their config checks skip here (and fail under CI=true)."
	@{ command -v clickhouse-server || test -x /usr/sbin/clickhouse-server; } >/dev/null && command -v clickhouse-client >/dev/null || \
	  { command -v apt-get >/dev/null && apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq --no-install-recommends clickhouse-server clickhouse-client >/dev/null; } || \
	  echo "ClickHouse could not be installed: its store tests skip here (and fail under CI=true)."
	@test -f /usr/share/java/zookeeper.jar && command -v java >/dev/null || \
	  { command -v apt-get >/dev/null && apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq --no-install-recommends zookeeper >/dev/null; } || \
	  echo "ZooKeeper could not be installed: the ClickHouse cluster tests skip here (and fail under CI=true)."
	@ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || \
	  { command -v apt-get >/dev/null && apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq --no-install-recommends postgresql >/dev/null; } || \
	  echo "PostgreSQL could not be installed: its accounts tests skip here (and fail under CI=true)."

## test: install, lint, type-check and run the whole suite
test: $(VENV)/.test-installed system-deps lint
	$(BIN)/python -m pytest

lint: $(VENV)/.test-installed
	$(BIN)/ruff check src tests benchmarks examples scripts
	$(BIN)/ruff format --check src tests benchmarks examples scripts
	$(BIN)/mypy

$(VENV)/.bench-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[server,test,bench]'
	touch $@

## bench: run the benchmarks (about 6 minutes, then the stores': DuckDB, ClickHouse and a two-shard cluster at 1M
## and 10M events, about 11 minutes more; QUICK=1 runs 1M only); results and how to read them: docs/benchmarks.md
bench: $(VENV)/.bench-installed
	@{ command -v wrk && { test -x /usr/sbin/nginx || command -v nginx; }; } >/dev/null || \
	  { command -v apt-get >/dev/null && apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq --no-install-recommends wrk nginx-light >/dev/null; } || \
	  echo "wrk or nginx could not be installed: bench_collector.py will say which is missing."
	$(BIN)/python benchmarks/bench_collector.py
	$(BIN)/python benchmarks/bench_sdk.py
	$(BIN)/python benchmarks/bench_safety_net.py
	@{ { command -v clickhouse-server || test -x /usr/sbin/clickhouse-server; } && \
	  test -f /usr/share/java/zookeeper.jar; } >/dev/null || \
	  { command -v apt-get >/dev/null && apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  apt-get install -y -qq --no-install-recommends clickhouse-server zookeeper >/dev/null; } || \
	  echo "ClickHouse or ZooKeeper could not be installed: bench_stores.py will say so."
	$(BIN)/python benchmarks/bench_stores.py $(if $(QUICK),--quick)

clean:
	rm -rf $(VENV) $(DATA) build src/*.egg-info
