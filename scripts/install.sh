#!/usr/bin/env bash
# Creates (or repairs) the environments the README's commands need, in the repository root:
#   bash scripts/install.sh           .venv: spatialspec with its test (pytest, ruff), umap and ray extras
#   bash scripts/install.sh --label   .venv-label: spatialspec + MONAI Label 0.8.5 (numpy 1.26, pydicom 2.4)
# Idempotent: when the install inputs are unchanged and the environment imports, nothing is re-installed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python_bin="${PYTHON:-python3}"

case "${1:-}" in
  "")
    venv="$root/.venv"
    constraints="$root/requirements/constraints.txt"
    inputs=("$root/pyproject.toml" "$constraints")
    probe="import torch, monai, ignite, mlflow, sklearn, spatialspec, pytest, ruff, umap, ray"
    ;;
  --label)
    venv="$root/.venv-label"
    constraints="$root/requirements/label-constraints.txt"
    inputs=("$root/pyproject.toml" "$constraints" "$root/requirements/label.txt")
    probe="import torch, monai, spatialspec, pytest, monailabel.interfaces.app, spatialspec.label.tasks"
    ;;
  *)
    echo "usage: bash scripts/install.sh [--label]" >&2
    exit 2
    ;;
esac

if [ ! -x "$venv/bin/python" ]; then
  echo "[install] creating $venv"
  "$python_bin" -m venv "$venv"
fi
py="$venv/bin/python"
stamp="$venv/.spatialspec-install"
want="$(cat "${inputs[@]}" | sha256sum | cut -d' ' -f1)"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$py" -c "$probe" 2>/dev/null; then
  echo "[install] $venv is up to date"
  exit 0
fi

export PIP_DISABLE_PIP_VERSION_CHECK=1
# pip's notes about local index folders this machine's pip configuration names but does not hold
quiet_pip() { "$py" -m pip install -q -c "$constraints" "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }
# torch first, from the pinned CPU wheel, so nothing later can pull a CUDA build.
quiet_pip "torch==2.13.0"
if [ "${1:-}" = "--label" ]; then
  # monailabel's requirements minus torchvision and sam2 (see requirements/label.txt), then monailabel itself
  quiet_pip -r "$root/requirements/label.txt" -e "$root[test]"
  quiet_pip --no-deps "monailabel==0.8.5"
  if "$py" -m pip list --format=freeze | grep -iE '^(torchvision|sam2)=' ; then
    echo "[install] torchvision/sam2 ended up in $venv (they do not import beside the CPU torch); aborting" >&2
    exit 1
  fi
else
  # the development environment carries the optional extras too, so the tests cover them
  quiet_pip -e "$root[test,umap,ray]"
fi
if "$py" -m pip list --format=freeze | grep -iE '^nvidia-|^triton=' ; then
  echo "[install] CUDA packages ended up in $venv; aborting" >&2
  exit 1
fi
"$py" -c "$probe"
echo "$want" > "$stamp"
echo "[install] $venv ready ($("$py" -c 'import torch, monai, numpy; print("torch", torch.__version__, "monai", monai.__version__, "numpy", numpy.__version__)'))"
