# The peer of configs/mae/mae_vit-base-p16_8xb512-amp-coslr-800e_in1k.py:
# the same network, data and schedule on mmpretrain's own, unchanged MAE
# (mmpretrain.MAE, MAEViT and MAEPretrainDecoder), for side-by-side benchmarks.
_base_ = '../mae_vit-base-p16_8xb512-amp-coslr-800e_in1k.py'

model = dict(
    type='mmpretrain.MAE',
    backbone=dict(type='mmpretrain.MAEViT'),
    neck=dict(type='mmpretrain.MAEPretrainDecoder'))
# mmpretrain's MAE has no `reconstruct`, which the picture hook needs
custom_hooks = []
