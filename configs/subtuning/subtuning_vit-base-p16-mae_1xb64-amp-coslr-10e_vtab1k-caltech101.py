# SubTuning of an MAE ViT-B/16 (configs/mae, ImageNet-1K) on VTAB-1k
# Caltech101 with the spec's ViT-B recipe: AdamW lr 1e-4 / wd 5e-5, cosine
# over 10 epochs, 224 px; the head reads the [CLS] token (out_type
# 'cls_token'), blocks are `layers.0` ... `layers.11`.
# The blocks here are the last two; choose them for your data with
#   python tools/analysis_tools/subtuning_search.py greedy CONFIG --start all ...
# (the reference's ViT search starts from all blocks and removes).
_base_ = [
    './subtuning_resnet50-simclr_1xb256-amp-coslr-20e_vtab1k-caltech101.py'
]

pretrained = 'work_dirs/mae_vit-base-p16_8xb512-amp-coslr-800e_in1k/epoch_800.pth'  # noqa
max_epochs = 10

model = dict(
    trainable_blocks=['layers.10', 'layers.11'],
    backbone=dict(
        _delete_=True,
        type='VisionTransformer',
        arch='base',
        img_size=224,
        patch_size=16,
        out_type='cls_token',
        final_norm=True,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=None,
    head=dict(in_channels=768))

optim_wrapper = dict(optimizer=dict(lr=1e-4, weight_decay=5e-5))
param_scheduler = [
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs,
        by_epoch=True,
        eta_min=0.,
        convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
default_hooks = dict(checkpoint=dict(interval=max_epochs))
