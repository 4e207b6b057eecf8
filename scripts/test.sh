#!/usr/bin/env bash
# The whole suite, on SQLite and PostgreSQL (each database test runs on both), in parallel.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/services.sh
.venv/bin/ruff check --quiet --select F,E9 src tests bench
set +e
# worksteal: an idle worker takes queued tests from a busy one, so the slow reliability tests
# (100,000-mail campaigns) do not end up queued behind each other on one worker.
.venv/bin/pytest -n "${PYTEST_WORKERS:-2}" --dist worksteal "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$status"
