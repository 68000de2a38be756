# One entry point for the two things a newcomer does: run a local cluster, run the tests.
# Both create .venv and install the project into it when needed; nothing else is required.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint clean-data browser grpc-code
CHROMIUM ?= /usr/bin/chromium

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## run: start a local 3-node cluster (HTTP 8001-8003, Raft 9001-9003, gRPC 10001-10003, data under ./data); Ctrl-C stops it
run: $(STAMP)
	$(PY) -m doq devcluster --nodes 3 --data-dir data

## browser: Debian's chromium for the admin UI's browser tests (tests/ui), with apt-get when root;
## without it those tests are skipped (saying why). Never a browser build from the internet.
browser:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing chromium (apt-get) for tests/ui"; \
	  (DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null && \
	   DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null) \
	  || echo "could not install chromium: tests/ui will be skipped"; \
	else echo "no chromium at $(CHROMIUM) and not root: tests/ui will be skipped"; fi

## test: lint, the import contract, strict types (pyproject's [tool.mypy] files), the test suite
test: $(STAMP) browser
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) -m mypy
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports

clean-data:
	rm -rf data

## grpc-code: regenerate doq/grpc/doq_pb2.py and doq_pb2_grpc.py from doq/grpc/doq.proto
grpc-code: $(STAMP)
	$(PY) -m grpc_tools.protoc -I . --python_out=. --grpc_python_out=. doq/grpc/doq.proto
