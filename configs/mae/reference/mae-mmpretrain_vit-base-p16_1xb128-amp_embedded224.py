# The peer of configs/mae/mae_vit-base-p16_1xb128-amp-coslr-30e_embedded224.py
# (one GPU, bf16 autocast): the same network, data and schedule on
# mmpretrain's own, unchanged MAE (mmpretrain.MAE, MAEViT and MAEPretrainDecoder), for
# side-by-side GPU benchmarks.
_base_ = '../mae_vit-base-p16_1xb128-amp-coslr-30e_embedded224.py'

model = dict(
    type='mmpretrain.MAE',
    backbone=dict(type='mmpretrain.MAEViT'),
    neck=dict(type='mmpretrain.MAEPretrainDecoder'))
# mmpretrain's MAE has no `reconstruct`, which the picture hook needs
custom_hooks = []
