# The peer of configs/mae/mae_vit-tiny-p8_1xb64-coslr-30e_embedded.py:
# the same network, data and schedule on mmpretrain's own, unchanged MAE
# (mmpretrain.MAE, MAEViT and MAEPretrainDecoder), for side-by-side benchmarks, e.g.
#   python tools/analysis_tools/benchmark_train.py \
#       configs/mae/mae_vit-tiny-p8_1xb64-coslr-30e_embedded.py \
#       configs/mae/reference/mae-mmpretrain_vit-tiny-p8_1xb64_embedded.py
_base_ = '../mae_vit-tiny-p8_1xb64-coslr-30e_embedded.py'

model = dict(
    type='mmpretrain.MAE',
    backbone=dict(type='mmpretrain.MAEViT'),
    neck=dict(type='mmpretrain.MAEPretrainDecoder'))
# mmpretrain's MAE has no `reconstruct`, which the picture hook needs
custom_hooks = []
