#!/usr/bin/env bash
# The GPU speed rows that configs/mae/README.md, configs/data2vec2/README.md and
# configs/data2vec2_speech/README.md leave "not measured", as one prepared run
# (one GPU, bf16 autocast):
#
#   bash tools/analysis_tools/gpu_speed_rows.sh OUT_DIR [ROW ...]
#
# ROW (default: all, in this order; each is one interleaved benchmark_train.py
# run, a JSON in OUT_DIR, its table on stdout):
#   mae512     MAE ViT-B/16 batch 512: mmssl compiled (one graph), mmssl with
#              CUDA graphs (compile.mode=reduce-overhead), lightly compiled,
#              lightly eager
#   mae1024    the same config at batch 1024, compiled: the MFU at a larger batch
#   d2v2       data2vec 2.0 ViT-B/16 (32 x 16 masks): NCHW / channels-last
#              decoder, eager and compiled
#   profile    the phases and top kernels of the compiled MAE batch-512 step
#   speech     data2vec 2.0 speech base, the config's 3 clips of 20 s per GPU,
#              eager and compiled (the channels-last 1 x k convolutions on cuDNN)
#
# Run from the repository root (PYTHON names the interpreter, default python).
# QUICK=1 runs every row with the tiny embedded configs on the CPU, a few
# steps each: a check of the commands, not a measurement.
set -euo pipefail

OUT=${1:?usage: gpu_speed_rows.sh OUT_DIR [mae512|mae1024|d2v2|profile|speech ...]}
shift
ROWS=${*:-mae512 mae1024 d2v2 profile speech}
for row in $ROWS; do
    case $row in
    mae512 | mae1024 | d2v2 | profile | speech) ;;
    *)
        echo "gpu_speed_rows.sh: unknown row '$row': use mae512, mae1024," \
            "d2v2, profile or speech" >&2
        exit 2 ;;
    esac
done
mkdir -p "$OUT"

PYTHON=${PYTHON:-python}
BENCH="$PYTHON tools/analysis_tools/benchmark_train.py"
PROFILE="$PYTHON tools/analysis_tools/profile_train_step.py"
if [ "${QUICK:-0}" = 1 ]; then
    MAE=configs/mae/mae_vit-tiny-p8_1xb64-coslr-30e_embedded.py
    LIGHTLY=configs/mae/reference/mae-lightly_vit-tiny-p8_1xb64_embedded.py
    D2V2=configs/data2vec2/data2vec2_vit-tiny-p8_1xb64-coslr-30e_embedded.py
    SPEECH=configs/data2vec2_speech/data2vec2_audio-tiny_1xb16-20e_embedded-speech.py
    RUN="--device cpu --threads 2 --iters 1 --repeat 1 --warmup 1"
    B512=8; B1024=16; BD2V2=2; BSPEECH=2; PSTEPS="--steps 1 --warmup 1"
else
    MAE=configs/mae/mae_vit-base-p16_1xb128-amp-coslr-30e_embedded224.py
    LIGHTLY=configs/mae/reference/mae-lightly_vit-base-p16_1xb128-amp_embedded224.py
    D2V2=configs/data2vec2/data2vec2_vit-base-p16_1xb32-amp-coslr-30e_embedded224.py
    SPEECH=configs/data2vec2_speech/data2vec2_audio-base_8xb3-amp-400k_librispeech-960h.py
    RUN="--device cuda --iters 8 --repeat 3 --warmup 4"
    B512=512; B1024=1024; BD2V2=32; BSPEECH=3; PSTEPS="--steps 3 --warmup 3"
fi

for row in $ROWS; do
    echo "=== $row ($(date -u +%H:%M:%S))"
    case $row in
    mae512)
        $BENCH $MAE $MAE $LIGHTLY $LIGHTLY \
            --names mmssl-compiled mmssl-cudagraphs lightly-compiled lightly \
            --arm-options compile=True compile.mode=reduce-overhead compile=True - \
            --batch-size $B512 $RUN --out "$OUT/mae512.json" ;;
    mae1024)
        $BENCH $MAE --names mmssl-compiled --arm-options compile=True \
            --batch-size $B1024 $RUN --out "$OUT/mae1024.json" ;;
    d2v2)
        $BENCH $D2V2 $D2V2 $D2V2 $D2V2 \
            --names nchw channels-last nchw-compiled channels-last-compiled \
            --arm-options - model.neck.channels_last=True compile=True \
            'compile=True model.neck.channels_last=True' \
            --batch-size $BD2V2 $RUN --out "$OUT/d2v2.json" ;;
    profile)
        $PROFILE $MAE --batch-size $B512 $PSTEPS --top 20 \
            --device "$( [ "${QUICK:-0}" = 1 ] && echo cpu || echo cuda )" \
            --out "$OUT/mae512_profile.json" --cfg-options compile=True ;;
    speech)
        $BENCH $SPEECH $SPEECH --names eager compiled \
            --arm-options - compile=True \
            --batch-size $BSPEECH $RUN --out "$OUT/speech.json" ;;
    esac
done
