#!/usr/bin/env bash
# One-command set-up: creates .venv/ in the repo root and installs the whole stack into it.
#
#   bash tools/install.sh          # install (idempotent; a second run takes seconds)
#   bash tools/install.sh --run    # install, then run the main job (the search) on its embedded default
#
# Environment: PYTHON (interpreter for the venv, default python3.11 or python3),
# ATTNZERO_WHEELHOUSE (where the built mmcv wheel is kept, default ~/.cache/attnzero/wheelhouse),
# FORCE_CUDA=1 (build mmcv's CUDA ops too; needs nvcc and a CUDA torch).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
VENV="$ROOT/.venv"
RUN_MAIN=0
for arg in "$@"; do
  case "$arg" in
    --run) RUN_MAIN=1 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument '$arg' (expected --run or --help)" >&2; exit 2 ;;
  esac
done

log() { printf '[install %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
T0=$(date +%s)

if [ -z "${PYTHON:-}" ]; then
  PYTHON=$(command -v python3.11 || command -v python3)
fi
if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtual environment $VENV with $PYTHON"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --disable-pip-version-check --progress-bar off -c "$ROOT/requirements/constraints.txt")

# A stamp of everything that decides what gets installed; equal stamp + healthy imports = nothing to do.
STAMP="$VENV/.attnzero-install-stamp"
want=$(cat "$ROOT/tools/install.sh" "$ROOT/tools/build_mmcv.sh" "$ROOT/requirements/constraints.txt" "$ROOT/setup.py" | sha256sum | cut -d' ' -f1)
IMPORT_CHECK='import torch, torchvision, mmengine, mmcv, mmcv.ops, mmdet, mmseg, mmpretrain, timm, pymoo, dask.distributed, attnzero
assert mmcv.__version__ == "2.1.0", mmcv.__version__'
healthy() { "$PY" -c "$IMPORT_CHECK" >/dev/null 2>&1; }
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && healthy; then
  log "environment is up to date ($VENV)"
else
  log "step 1/5: build tools (pip, setuptools 80.x with pkg_resources for mmcv, wheel, ninja)"
  "${PIP[@]}" -q --upgrade pip
  "${PIP[@]}" -q setuptools wheel ninja psutil

  log "step 2/5: torch 2.14.1 + torchvision 0.29.1"
  "${PIP[@]}" -q torch torchvision

  log "step 3/5: timm, pymoo, dask, plotting and test tools"
  "${PIP[@]}" -q timm pymoo "dask[distributed]" tqdm rich matplotlib pyyaml pandas pyarrow scikit-learn pytest pytest-timeout

  if "$PY" -c "import mmcv, mmcv.ops, sys; sys.exit(mmcv.__version__ != '2.1.0')" >/dev/null 2>&1; then
    log "step 4/5: mmcv 2.1.0 with ops already installed"
  else
    log "step 4/5: mmcv 2.1.0 with compiled ops (built once, then reused from the wheelhouse)"
    wheel=$(PYTHON="$PY" bash "$ROOT/tools/build_mmcv.sh" | tail -n 1)
    # mmcv's runtime dependencies first (torch is already pinned and installed), then the wheel
    "${PIP[@]}" -q mmengine addict packaging Pillow pyyaml yapf opencv-python
    "${PIP[@]}" -q --no-deps "$wheel"
  fi

  log "step 5/5: mmengine, mmdet, mmseg, mmpretrain and attnzero (editable, all extras)"
  "${PIP[@]}" -q -e "$ROOT[all]"
  healthy || { log "import check failed:"; "$PY" -c "$IMPORT_CHECK"; exit 1; }
  echo "$want" > "$STAMP"
fi
"$PY" - <<'PY'
import torch, mmcv, mmdet, mmseg, mmengine, numpy, timm
print(f'[install] torch {torch.__version__} (cuda available: {torch.cuda.is_available()}), numpy {numpy.__version__}, '
      f'mmengine {mmengine.__version__}, mmcv {mmcv.__version__}, mmdet {mmdet.__version__}, '
      f'mmseg {mmseg.__version__}, timm {timm.__version__}')
PY
log "done in $(( $(date +%s) - T0 ))s; activate with: source .venv/bin/activate"

if [ "$RUN_MAIN" = "1" ]; then
  log "running the main job: python tools/search.py (embedded default)"
  exec "$PY" "$ROOT/tools/search.py"
fi
