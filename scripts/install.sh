#!/usr/bin/env bash
# Creates (or repairs) .venv in the repository root with everything the README's commands need.
# Idempotent: when the install inputs are unchanged and the environment imports, nothing is re-installed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
constraints="$root/requirements/constraints.txt"
python_bin="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
  echo "[install] creating $venv"
  "$python_bin" -m venv "$venv"
fi
py="$venv/bin/python"
stamp="$venv/.spatialspec-install"
want="$(cat "$root/pyproject.toml" "$constraints" | sha256sum | cut -d' ' -f1)"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
   && "$py" -c "import torch, monai, ignite, mlflow, sklearn, spatialspec, pytest, umap" 2>/dev/null; then
  echo "[install] $venv is up to date"
  exit 0
fi

export PIP_DISABLE_PIP_VERSION_CHECK=1
# pip's notes about local index folders this machine's pip configuration names but does not hold
quiet_pip() { "$py" -m pip install -q -c "$constraints" "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
# torch first, from the pinned CPU wheel, so nothing later can pull a CUDA build.
quiet_pip "torch==2.13.0"
# the development environment carries the optional extras too, so the tests cover them
quiet_pip -e "$root[test,umap]"
if "$py" -m pip list --format=freeze | grep -iE '^nvidia-|^triton=' ; then
  echo "[install] CUDA packages ended up in $venv; aborting" >&2
  exit 1
fi
echo "$want" > "$stamp"
echo "[install] $venv ready ($("$py" -c 'import torch, monai; print("torch", torch.__version__, "monai", monai.__version__)'))"
