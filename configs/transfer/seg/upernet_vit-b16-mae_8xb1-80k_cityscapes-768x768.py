# UperNet on a ViT-B/16 pretrained by MAE, Cityscapes (data/cityscapes, 19
# classes), 768 x 768 crops (a multiple of the patch size), 80k iterations
# at batch 8: the recipe of upernet_vit-b16-mae_8xb2-160k_ade20k-512x512.py
# (layer-wise lr decay 0.65) on mmseg's Cityscapes 768 pipeline.
_base_ = [
    '../_base_/models/upernet_vit-b16-mae.py',
    'mmseg::_base_/datasets/cityscapes_768x768.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_80k.py'
]
custom_imports = dict(imports=['mmssl'], allow_failed_imports=False)

pretrained = 'work_dirs/transfer/mae_vit-base-p16_in1k/backbone_mmpretrain.pth'
crop_size = (768, 768)
num_classes = 19

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(img_size=crop_size, init_cfg=dict(checkpoint=pretrained)),
    decode_head=dict(num_classes=num_classes),
    auxiliary_head=dict(num_classes=num_classes),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(512, 512)))

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
        end=80000,
        by_epoch=False)
]

# 8 GPUs x 1 image
train_dataloader = dict(batch_size=1)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
