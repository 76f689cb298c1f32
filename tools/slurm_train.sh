#!/usr/bin/env bash
# Training on a Slurm cluster (one task per GPU).
#
#   bash tools/slurm_train.sh PARTITION JOB_NAME CONFIG [WORK_DIR] [tools/train.py arguments...]
#
# Environment variables: GPUS (8, total tasks), GPUS_PER_NODE (8; 0 on CPU-only
# nodes: no --gres is requested and training uses gloo), CPUS_PER_TASK (5),
# SRUN_ARGS (extra srun arguments), PYTHON (python).
set -x
if [[ $# -lt 3 ]]; then
    echo "usage: $0 PARTITION JOB_NAME CONFIG [WORK_DIR] [tools/train.py arguments...]" >&2
    exit 2
fi

PARTITION=$1
JOB_NAME=$2
CONFIG=$3
shift 3
WORK_DIR_ARGS=()
if [[ $# -gt 0 && "$1" != -* ]]; then
    WORK_DIR_ARGS=(--work-dir="$1")
    shift
fi
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
PYTHON=${PYTHON:-python}
TOOLS_DIR="$(cd "$(dirname "$0")" && pwd)"
GRES_ARGS=()
TASKS_PER_NODE=$GPUS_PER_NODE
if [[ "$GPUS_PER_NODE" -gt 0 ]]; then
    GRES_ARGS=(--gres=gpu:"$GPUS_PER_NODE")
else
    TASKS_PER_NODE=$GPUS
fi

# SRUN_ARGS is split on spaces on purpose (several srun options).
PYTHONPATH="$TOOLS_DIR/..":$PYTHONPATH \
srun -p "$PARTITION" \
    --job-name="$JOB_NAME" \
    "${GRES_ARGS[@]}" \
    --ntasks="$GPUS" \
    --ntasks-per-node="$TASKS_PER_NODE" \
    --cpus-per-task="$CPUS_PER_TASK" \
    --kill-on-bad-exit=1 \
    ${SRUN_ARGS} \
    "$PYTHON" -u "$TOOLS_DIR/train.py" "$CONFIG" "${WORK_DIR_ARGS[@]}" --launcher=slurm "$@"
