# dspex_native: every target installs what it needs, then runs.
#   make test   all suites: cargo test (runtime), pytest (bridge), ExUnit
#   make demo   two sessions, one program ID, run concurrently
#   make bench  the benchmark (see README "Performance")

PYTHON ?= python3
VENV ?= $(or $(DSPEX_PYTHON),$(CURDIR)/.venv)

# Build and run are separate settings. The NIF links against a build Python's libpython,
# resolved as mix.exs resolves it (the same string, or cargo would rebuild pyo3 between
# `cargo test` and `mix compile`); the venv that runs is a run-time setting.
ifeq ($(strip $(PYO3_PYTHON)),)
PYO3_PYTHON := $(shell $(PYTHON) priv/dspex_venv.py build-python)
endif
export PYO3_PYTHON
export DSPEX_PYTHON := $(VENV)
export LITELLM_LOCAL_MODEL_COST_MAP := True

.PHONY: setup system venv build test test-rust test-python test-elixir demo bench soak format lint clean

setup: system venv

# Erlang/OTP and Elixir from Debian's packages when elixir is missing.
system:
	@if ! command -v elixir >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && [ -f /etc/debian_version ]; then \
	    echo "==> installing Erlang/OTP and Elixir from Debian's packages"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq erlang-base erlang-dev elixir >/dev/null; \
	  else \
	    echo "dspex_native needs Erlang/OTP >= 25 and Elixir >= 1.14 (on Debian, as root:"; \
	    echo "  apt-get install erlang-base erlang-dev elixir). Install them and run make again."; \
	    exit 1; \
	  fi; \
	fi

# The same script as `mix dspex_native.setup`: a no-op while the stamp (requirements hash +
# Python version) matches; uv when it can get it, else pip.
venv:
	@$(PYO3_PYTHON) priv/dspex_venv.py setup --quiet $(VENV)

build: setup
	mix compile

test: setup test-rust test-python test-elixir

test-rust: venv
	cargo test --release -p dspex_runtime

test-python: venv
	cd priv/python && $(VENV)/bin/python -m pytest

test-elixir: setup
	mix test

demo: setup
	mix run examples/two_sessions.exs

bench: setup
	MIX_ENV=prod mix run bench/run.exs $(ARGS)

soak: setup
	mix test --only soak

format:
	mix format
	cargo fmt --all

lint:
	mix format --check-formatted
	cargo fmt --all -- --check
	cargo clippy --release --workspace -- -D warnings

clean:
	rm -rf _build target priv/native
