# UperNet on a ViT-B/16 pretrained by MAE, ADE20K
# (data/ade/ADEChallengeData2016, 150 classes), 512 x 512 crops, 160k
# iterations at batch 16: the MAE / BEiT recipe (AdamW lr 1e-4, wd 0.05, layer-
# wise lr decay 0.65, 1500 warm-up iterations, linear decay, drop path 0.1).
# `pretrained` is the `convert_backbone.py --to mmpretrain` export of a
# checkpoint of
# configs/mae/mae_vit-base-p16_8xb512-amp-coslr-800e_in1k.py
# (commands: configs/transfer/README.md, "Full-size runs").
_base_ = [
    '../_base_/models/upernet_vit-b16-mae.py',
    'mmseg::_base_/datasets/ade20k.py', 'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_160k.py'
]
custom_imports = dict(imports=['mmssl'], allow_failed_imports=False)

pretrained = 'work_dirs/transfer/mae_vit-base-p16_in1k/backbone_mmpretrain.pth'
crop_size = (512, 512)
num_classes = 150

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(img_size=crop_size, init_cfg=dict(checkpoint=pretrained)),
    decode_head=dict(num_classes=num_classes),
    auxiliary_head=dict(num_classes=num_classes),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 341)))

# layer-wise lr decay: block i of 12 gets 0.65 ** (12 - i) of the head's rate
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='mmssl.BackboneLayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(
        layer_decay_rate=0.65,
        flat_decay_mult=0.,
        custom_keys={
            '.pos_embed': dict(decay_mult=0.),
            '.cls_token': dict(decay_mult=0.)
        }))
param_scheduler = [
    dict(
        type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(
        type='PolyLR',
        eta_min=0.,
        power=1.0,
        begin=1500,
        end=160000,
        by_epoch=False)
]

# 8 GPUs x 2 images
train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
