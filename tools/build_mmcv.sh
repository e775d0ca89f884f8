#!/usr/bin/env bash
# Build an mmcv 2.1.0 wheel with compiled ops against the torch installed in the active Python.
#
#   PYTHON=.venv/bin/python bash tools/build_mmcv.sh            # CPU ops
#   FORCE_CUDA=1 PYTHON=.venv/bin/python bash tools/build_mmcv.sh  # CPU + CUDA ops (needs nvcc)
#
# Prints the path of the wheel on its last line. The wheel is kept in a wheelhouse keyed by
# mmcv version, torch version, Python tag and CPU/CUDA, and reused by later calls, so the
# ~12 min compile happens once per machine (see ATTNZERO_WHEELHOUSE).
#
# Why a patched build: mmcv 2.1.0's setup.py imports pkg_resources (setuptools<81 has it) and
# hard-codes -std=c++17, while torch >= 2.10 headers need C++20. We raise the standard and
# compile with -O1 -g0 (about 2x faster than -O3 -g, the ops are not the project's hot path).
set -euo pipefail

MMCV_VERSION=${MMCV_VERSION:-2.1.0}
MMCV_SDIST_URL=${MMCV_SDIST_URL:-https://files.pythonhosted.org/packages/a7/19/f97f0fd4d432113a232e75f965335be6b7bb6557ae9faf8051e9a012cadd/mmcv-2.1.0.tar.gz}
MMCV_SDIST_SHA256=${MMCV_SDIST_SHA256:-d387bcab66b467479b6660310e23746cfc79c6e57acf04094680adb499a5cd3f}
PYTHON=${PYTHON:-python}
WHEELHOUSE=${ATTNZERO_WHEELHOUSE:-$HOME/.cache/attnzero/wheelhouse}
CXX_STD=${MMCV_CXX_STD:-c++20}
OPT_FLAGS=${MMCV_OPT_FLAGS:--O1 -g0}

log() { printf '[build_mmcv] %s\n' "$*" >&2; }

read -r TORCH_VERSION PYTAG CUDA_OK < <("$PYTHON" - <<'PY'
import sys, torch
print(torch.__version__.split('+')[0], f'cp{sys.version_info[0]}{sys.version_info[1]}', int(torch.cuda.is_available()))
PY
)
FLAVOUR=cpu
if [ "${FORCE_CUDA:-0}" = "1" ] || [ "$CUDA_OK" = "1" ]; then FLAVOUR=cuda; fi
KEY="mmcv-${MMCV_VERSION}-torch${TORCH_VERSION}-${PYTAG}-${FLAVOUR}"
DEST="$WHEELHOUSE/$KEY"

existing=$(ls "$DEST"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n 1 || true)
if [ -n "$existing" ]; then
  log "reusing $existing"
  echo "$existing"
  exit 0
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/attnzero-mmcv.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
SDIST="$WHEELHOUSE/mmcv-${MMCV_VERSION}.tar.gz"
mkdir -p "$WHEELHOUSE" "$DEST"
if [ ! -f "$SDIST" ] || ! echo "$MMCV_SDIST_SHA256  $SDIST" | sha256sum -c --status; then
  log "downloading the mmcv ${MMCV_VERSION} sdist"
  "$PYTHON" - "$MMCV_SDIST_URL" "$SDIST.part" <<'PY'
import sys, urllib.request
urllib.request.urlretrieve(sys.argv[1], sys.argv[2])
PY
  echo "$MMCV_SDIST_SHA256  $SDIST.part" | sha256sum -c --status || { log "sha256 mismatch for $MMCV_SDIST_URL"; exit 1; }
  mv "$SDIST.part" "$SDIST"
fi
tar -xzf "$SDIST" -C "$WORK"
SRC="$WORK/mmcv-${MMCV_VERSION}"

# Raise the C++ standard everywhere setup.py pins one, and add our optimisation flags to cxx.
"$PYTHON" - "$SRC/setup.py" "$CXX_STD" "$OPT_FLAGS" <<'PY'
import re, sys
path, std, opt = sys.argv[1], sys.argv[2], sys.argv[3].split()
src = open(path).read()
src, n = re.subn(r"-std=c\+\+1[47]", f"-std={std}", src)
if n == 0:
    sys.exit('build_mmcv: no -std flag found in mmcv setup.py; the patch no longer applies')
marker = "        ext_ops = extension("
if marker not in src:
    sys.exit('build_mmcv: mmcv setup.py layout changed; cannot add compile flags')
inject = f"        extra_compile_args['cxx'] = list(extra_compile_args.get('cxx', [])) + {opt!r}\n"
src = src.replace(marker, inject + marker, 1)
open(path, 'w').write(src)
PY

export MMCV_WITH_OPS=1
export MAX_JOBS=${MAX_JOBS:-$(nproc)}
[ "$FLAVOUR" = "cuda" ] && export FORCE_CUDA=1
NSRC=$(ls "$SRC"/mmcv/ops/csrc/pytorch/*.cpp "$SRC"/mmcv/ops/csrc/pytorch/cpu/*.cpp | wc -l)
log "compiling mmcv ${MMCV_VERSION} ops ($FLAVOUR, $NSRC C++ sources, MAX_JOBS=$MAX_JOBS, -std=$CXX_STD $OPT_FLAGS)"
log "this takes 10-15 min on 2 cores; the full log is $WHEELHOUSE/$KEY.log"
start=$(date +%s)
set +e
( cd "$SRC" && "$PYTHON" -m pip wheel . --no-build-isolation --no-deps -v -w "$WORK/dist" ) \
  > "$WHEELHOUSE/$KEY.log" 2>&1 &
pid=$!
# Progress: ninja prints "[k/n] ..." per compiled unit.
while kill -0 "$pid" 2>/dev/null; do
  sleep 30
  step=$(grep -oE '^ *\[[0-9]+/[0-9]+\]' "$WHEELHOUSE/$KEY.log" | tail -n 1 | tr -d ' ')
  log "  ... $(( $(date +%s) - start ))s elapsed ${step:+, compiled $step}"
done
wait "$pid"; rc=$?
set -e
if [ $rc -ne 0 ]; then
  tail -n 40 "$WHEELHOUSE/$KEY.log" >&2
  log "mmcv build failed (rc=$rc); full log: $WHEELHOUSE/$KEY.log"
  exit $rc
fi
wheel=$(ls "$WORK"/dist/mmcv-*.whl | head -n 1)
mv "$wheel" "$DEST/"
log "built $(basename "$wheel") in $(( $(date +%s) - start ))s"
echo "$DEST/$(basename "$wheel")"
