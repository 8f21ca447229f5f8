#!/usr/bin/env bash
# Installs .venv and the MONAI Label environment .venv-label (scripts/install.sh), lints with ruff (pinned in the
# test extra; rules in pyproject.toml), then runs the whole test suite, slow tests included; the label tests start a
# real MONAI Label server from .venv-label.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow"` for the fast subset.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/install.sh"
bash "$root/scripts/install.sh" --label
# the report's browser test (tests/report/test_report_browser.py) drives Debian's chromium; install it where apt-get
# can, never failing here: without it the test skips and says why
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1; then
  { apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 &&
    apt-get install -y -q chromium >/dev/null 2>&1; }; } ||
    echo "[test] could not install chromium with apt-get: the report's browser test will be skipped" >&2
fi
cd "$root"
# lint first (rules in pyproject.toml [tool.ruff]); a violation fails the run before any test starts
"$root/.venv/bin/ruff" check spatialspec scripts tests
exec "$root/.venv/bin/python" -m pytest "$@"
