#!/usr/bin/env bash
# Set up the environment, pretrain MAE on the embedded shapes data and print
# the frozen-feature evaluation (kNN / linear probe) of the pretrained
# backbone beside a random one.
#   bash tools/quickstart.sh [WORK_DIR]
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$REPO/tools/setup_env.sh"
PY="${MMSSL_VENV:-$REPO/.venv}/bin/python"
CONFIG=configs/mae/mae_vit-tiny-p8_1xb64-coslr-30e_embedded.py
WORK_DIR="${1:-work_dirs/quickstart_mae}"
cd "$REPO"
"$PY" tools/train.py "$CONFIG" --work-dir "$WORK_DIR"
CKPT="$(cat "$WORK_DIR/last_checkpoint")"
"$PY" tools/analysis_tools/eval_frozen.py "$CONFIG" "$CKPT" --random \
    --protocols knn linear --out "$WORK_DIR/frozen_eval.json"
echo "reconstructions: $WORK_DIR/vis/"
