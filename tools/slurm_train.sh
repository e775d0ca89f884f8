#!/usr/bin/env bash
# Training on a Slurm cluster (the OpenMMLab convention): one task per GPU, --launcher slurm.
#
#   bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [tools/train.py options...]
#   GPUS=16 GPUS_PER_NODE=8 bash tools/slurm_train.sh gpu az-mrcnn mmconfigs/mask_rcnn/... work_dirs/x
#
# Environment: GPUS (8, in total), GPUS_PER_NODE (8), CPUS_PER_TASK (5), SRUN_ARGS (extra srun
# options, e.g. "--quotatype=auto" or "--time=48:00:00"), PYTHON (python).
set -euo pipefail
if [ $# -lt 4 ]; then
  sed -n '2,8p' "$0"; exit 2
fi
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
shift 4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
PYTHON=${PYTHON:-python}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
# shellcheck disable=SC2086
srun -p "$PARTITION" \
  --job-name="$JOB_NAME" \
  --gres=gpu:"$GPUS_PER_NODE" \
  --ntasks="$GPUS" \
  --ntasks-per-node="$GPUS_PER_NODE" \
  --cpus-per-task="$CPUS_PER_TASK" \
  --kill-on-bad-exit=1 \
  ${SRUN_ARGS} \
  "$PYTHON" -u "$ROOT/tools/train.py" "$CONFIG" --work-dir="$WORK_DIR" --launcher="slurm" "$@"
