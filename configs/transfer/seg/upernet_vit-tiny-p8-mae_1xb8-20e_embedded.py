# UperNet on the tiny ViT (192-d, 6 blocks, 3 heads, patch 8) of
# configs/mae/mae_vit-tiny-p8_1xb64-coslr-30e_embedded.py, fine-tuned on the
# embedded segmentation split (64 px), with the recipe of MAE / BEiT
# segmentation scaled down: features of blocks 2, 3, 4, 6 turned into a
# stride 4-8-16-32 pyramid (Feature2Pyramid; rescales 2, 1, 0.5, 0.25 with
# patch 8 give the strides that 4, 2, 1, 0.5 give with patch 16), AdamW,
# layer-wise lr decay 0.65, linear warm-up then poly decay.
# The backbone is mmpretrain's VisionTransformer (MAE's encoder without the
# masking); `pretrained` is the backbone that
#   python tools/analysis_tools/transfer_pipeline.py \
#       --method mae --task seg
# converts (tools/model_converters/convert_backbone.py --to mmpretrain).
_base_ = [
    '../_base_/embedded_seg.py',
    '../_base_/default_runtime_seg.py',
]

pretrained = 'work_dirs/transfer/embedded/mae/backbone_mmpretrain.pth'
num_classes = 10
embed_dims = 192
max_epochs = 20
warmup_epochs = 2
norm_cfg = dict(type='SyncBN', requires_grad=True)

model = dict(
    type='EncoderDecoder',
    data_preprocessor=dict(
        type='SegDataPreProcessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_val=0,
        seg_pad_val=255,
        size=(64, 64)),
    backbone=dict(
        type='mmpretrain.VisionTransformer',
        arch=dict(
            embed_dims=embed_dims,
            num_layers=6,
            num_heads=3,
            feedforward_channels=768),
        img_size=64,
        patch_size=8,
        out_indices=(1, 2, 3, 5),
        out_type='featmap',
        drop_path_rate=0.1,
        final_norm=False,
        init_cfg=dict(
            type='Pretrained', prefix='backbone.', checkpoint=pretrained)),
    neck=dict(
        type='Feature2Pyramid',
        embed_dim=embed_dims,
        rescales=[2, 1, 0.5, 0.25],
        norm_cfg=norm_cfg),
    decode_head=dict(
        type='UPerHead',
        in_channels=[embed_dims] * 4,
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2),
        channels=64,
        dropout_ratio=0.1,
        num_classes=num_classes,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead',
        in_channels=embed_dims,
        in_index=2,
        channels=64,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=num_classes,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'))

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.05),
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
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True),
    dict(
        type='PolyLR',
        eta_min=0.,
        power=1.0,
        begin=warmup_epochs,
        end=max_epochs,
        by_epoch=True,
        convert_to_iter_based=True)
]
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
