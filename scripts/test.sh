#!/usr/bin/env bash
# Installs .venv and the MONAI Label environment .venv-label (scripts/install.sh), then runs the whole test suite,
# slow tests included; the label tests start a real MONAI Label server from .venv-label.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow"` for the fast subset.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/install.sh"
bash "$root/scripts/install.sh" --label
cd "$root"
exec "$root/.venv/bin/python" -m pytest "$@"
