# The lightly peer of configs/mae/mae_vit-base-p16_1xb128-amp-coslr-30e_embedded224.py
# (one GPU, bf16 autocast): lightly 1.6's MAE
# (configs/_base_/models/mae-lightly_vit-base-p16.py) with the same data
# preprocessor, optimizer wrapper and schedule, for side-by-side GPU
# benchmarks (needs `pip install --no-deps -r requirements/benchmark.txt`):
#   python tools/analysis_tools/benchmark_train.py \
#       configs/mae/mae_vit-base-p16_1xb128-amp-coslr-30e_embedded224.py \
#       configs/mae/reference/mae-lightly_vit-base-p16_1xb128-amp_embedded224.py \
#       --names mmssl lightly --device cuda
_base_ = [
    '../mae_vit-base-p16_1xb128-amp-coslr-30e_embedded224.py',
    '../../_base_/models/mae-lightly_vit-base-p16.py'
]

model = {{_base_.lightly_mae_model}}
# lightly's AdamW: torch's defaults (see mae-lightly_vit-base-p16_8xb512_in1k.py)
optim_wrapper = dict(
    optimizer=dict(fused=None), paramwise_cfg={{_base_.lightly_paramwise_cfg}})
# the reconstruction picture hook needs mmssl's MAE.reconstruct
custom_hooks = []
