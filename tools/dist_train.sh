#!/usr/bin/env bash
# Distributed training on one or more nodes with torchrun.
#
#   bash tools/dist_train.sh CONFIG GPUS [tools/train.py arguments...]
#
# GPUS is the number of processes on this node (one per GPU; on a machine
# without CUDA, CPU processes that talk over gloo). Environment variables:
#   NNODES (1), NODE_RANK (0), PORT (29500), MASTER_ADDR (127.0.0.1),
#   PYTHON (python): the interpreter, e.g. PYTHON=.venv/bin/python.
if [[ $# -lt 2 ]]; then
    echo "usage: $0 CONFIG GPUS [tools/train.py arguments...]" >&2
    exit 2
fi

CONFIG=$1
GPUS=$2
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
PORT=${PORT:-29500}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
PYTHON=${PYTHON:-python}
TOOLS_DIR="$(cd "$(dirname "$0")" && pwd)"

PYTHONPATH="$TOOLS_DIR/..":$PYTHONPATH \
"$PYTHON" -m torch.distributed.run \
    --nnodes="$NNODES" \
    --node_rank="$NODE_RANK" \
    --master_addr="$MASTER_ADDR" \
    --nproc_per_node="$GPUS" \
    --master_port="$PORT" \
    "$TOOLS_DIR/train.py" \
    "$CONFIG" \
    --launcher pytorch "${@:3}"
