#!/usr/bin/env bash
# Installs .venv (scripts/install.sh) and runs the main job: the spatial-specificity study on the built-in synthetic
# data (levels binary, bbox, seg; seeds 0, 1, 2). Prints the results table, where the plot and MLflow store are, and
# the path of the study's HTML report (report.html beside results.json; open it in a browser).
# Extra arguments go to `spatialspec study`, e.g. `bash scripts/demo.sh --score mean,max,topk:64`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/install.sh"
cd "$root"
out="$root/runs/demo"
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do  # the study folder, when the extra arguments name another one
  case "${args[i]}" in
    --out) out="${args[i + 1]:-$out}" ;;
    --out=*) out="${args[i]#--out=}" ;;
  esac
done
"$root/.venv/bin/spatialspec" study --out "$root/runs/demo" "$@"
# `spatialspec study` writes report.html; rewrite it only if it is older than the results
if [ ! "$out/report.html" -nt "$out/results.json" ]; then
  "$root/.venv/bin/spatialspec" report "$out" >/dev/null
fi
echo "HTML report: $out/report.html"
