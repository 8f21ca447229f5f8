#!/usr/bin/env bash
# Installs .venv (scripts/install.sh) and runs the main job: the spatial-specificity study on the built-in synthetic
# data (levels binary, bbox, seg; seeds 0, 1, 2). Prints the results table and where the plot and MLflow store are.
# Extra arguments go to `spatialspec study`, e.g. `bash scripts/demo.sh --score mean,max,topk:64`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/install.sh"
cd "$root"
exec "$root/.venv/bin/spatialspec" study --out "$root/runs/demo" "$@"
