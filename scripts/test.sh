#!/usr/bin/env bash
# The whole suite in parallel: service tests on SQLite and PostgreSQL, web and CLI adapter tests on SQLite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/services.sh
.venv/bin/ruff check --quiet --select F,E9 src tests bench
# The layering (adapters → flows → contexts → infrastructure, no cycles): .importlinter.
.venv/bin/lint-imports --no-cache
set +e
# loadgroup: the tests that run several worker processes and judge how they share work, recover
# or keep a pace form one group that one xdist worker runs from the start, one at a time, while
# the other worker takes everything else test by test (SERIAL_MODULES in tests/conftest.py).
# PYTEST_DIST=worksteal lets them overlap instead.
# `make test-full` sets SENDWELL_RELIABILITY_RECIPIENTS=100000.
# One xdist worker more than cores: the serial group spends much of its time waiting on worker
# processes it started (heartbeats, restarts, timeouts), so a core it leaves idle goes to the rest.
.venv/bin/pytest -n "${PYTEST_WORKERS:-$(( $(nproc) + 1 ))}" --dist "${PYTEST_DIST:-loadgroup}" "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$status"
