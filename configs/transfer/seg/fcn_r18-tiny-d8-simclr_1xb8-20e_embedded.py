# FCN on the tiny ResNet-18 (32-channel stem and base width) of
# configs/simclr/simclr_resnet18-tiny_1xb64-coslr-30e_embedded.py, dilated to
# output stride 8, fine-tuned on the embedded segmentation split (64 px).
# `pretrained` is the backbone that
#   python tools/analysis_tools/transfer_pipeline.py \
#       --method simclr --task seg
# converts (tools/model_converters/convert_backbone.py --to mmseg); set
# model.backbone.init_cfg=None for the random-init baseline.
# SyncBN as in the full recipe: one process reverts it to BN.
_base_ = [
    '../_base_/embedded_seg.py',
    '../_base_/default_runtime_seg.py',
]

pretrained = 'work_dirs/transfer/embedded/simclr/backbone_mmseg.pth'
num_classes = 10
max_epochs = 20
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
        # mmseg's ResNet with the plain 7x7 stem (deep_stem=False) has the
        # key names of mmpretrain's ResNet (conv1, bn1, layer1-4)
        type='ResNet',
        depth=18,
        stem_channels=32,
        base_channels=32,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        dilations=(1, 1, 2, 4),
        strides=(1, 2, 1, 1),
        norm_cfg=norm_cfg,
        norm_eval=False,
        style='pytorch',
        contract_dilation=True,
        init_cfg=dict(
            type='Pretrained', prefix='backbone.', checkpoint=pretrained)),
    decode_head=dict(
        type='FCNHead',
        in_channels=256,
        in_index=3,
        channels=64,
        num_convs=2,
        concat_input=True,
        dropout_ratio=0.1,
        num_classes=num_classes,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead',
        in_channels=128,
        in_index=2,
        channels=32,
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

# mmseg's FCN optimizer (SGD 0.01, poly), at batch 8: small batches give
# the short schedule more updates
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=5e-4))
param_scheduler = [
    dict(
        type='PolyLR',
        eta_min=1e-4,
        power=0.9,
        begin=0,
        end=max_epochs,
        by_epoch=True,
        convert_to_iter_based=True)
]
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
