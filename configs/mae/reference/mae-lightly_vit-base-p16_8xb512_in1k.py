# The lightly peer of configs/mae/mae_vit-base-p16_8xb512-amp-coslr-800e_in1k.py:
# lightly 1.6's MAE (configs/_base_/models/mae-lightly_vit-base-p16.py) with
# the same data preprocessor, optimizer and schedule, for side-by-side CPU
# benchmarks (needs `pip install --no-deps -r requirements/benchmark.txt`):
#   python tools/analysis_tools/benchmark_train.py \
#       configs/mae/mae_vit-base-p16_8xb512-amp-coslr-800e_in1k.py \
#       configs/mae/reference/mae-lightly_vit-base-p16_8xb512_in1k.py \
#       --names mmssl lightly --batch-size 8 --threads 2
_base_ = [
    '../mae_vit-base-p16_8xb512-amp-coslr-800e_in1k.py',
    '../../_base_/models/mae-lightly_vit-base-p16.py'
]

model = {{_base_.lightly_mae_model}}
# lightly's benchmark runs torch's AdamW with its defaults (per-tensor loop on
# CPU): fused=None; `--cfg-options optim_wrapper.optimizer.fused=True` gives
# every arm mmssl's fused update instead
optim_wrapper = dict(
    optimizer=dict(fused=None), paramwise_cfg={{_base_.lightly_paramwise_cfg}})
# the reconstruction picture hook needs mmssl's MAE.reconstruct
custom_hooks = []
