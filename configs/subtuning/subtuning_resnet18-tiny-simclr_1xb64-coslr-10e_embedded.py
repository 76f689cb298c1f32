# SubTuning of the half-width ResNet-18 pretrained by SimCLR on the embedded
# shapes data (9 classes, 64 px): only the blocks in `trainable_blocks` and
# the linear head train; every other block keeps its pretrained weights and
# BatchNorm statistics (frozen blocks stay in eval mode).
# The spec's ResNet recipe: AdamW lr 1e-3 / wd 1e-2, cosine, 10 epochs.
#   python tools/train.py configs/simclr/simclr_resnet18-tiny_1xb64-coslr-30e_embedded.py
#   python tools/train.py configs/subtuning/subtuning_resnet18-tiny-simclr_1xb64-coslr-10e_embedded.py
# Fewer labels: --cfg-options train_dataloader.dataset.fraction=0.1
# From random init: --cfg-options model.backbone.init_cfg=None
_base_ = [
    '../_base_/datasets/embedded_bs64_cls.py', '../_base_/default_runtime.py'
]

max_epochs = 10
pretrained = 'work_dirs/simclr_resnet18-tiny_1xb64-coslr-30e_embedded/epoch_30.pth'  # noqa

model = dict(
    type='mmssl.SubTuningClassifier',
    # the set the greedy search chose on the SimCLR backbone with all labels
    # (configs/subtuning/README.md): every stage, the stem stays frozen;
    # with 30 % of the labels it chose ['layer3', 'layer4'], with 10 %
    # ['layer4']
    trainable_blocks=['layer1', 'layer2', 'layer3', 'layer4'],
    backbone=dict(
        type='ResNet',
        depth=18,
        stem_channels=32,
        base_channels=32,
        norm_cfg=dict(type='BN'),
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=9,
        in_channels=256,
        loss=dict(type='CrossEntropyLoss')))

# a class-balanced fraction of the training labels, drawn with its own seed
# (the same images for every run of a fraction)
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='mmssl.LabelFractionDataset',
        fraction=1.0,
        seed=0,
        dataset={{_base_.train_dataloader.dataset}},
        pipeline={{_base_.train_pipeline}}))

optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=1e-2))
param_scheduler = [
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs,
        by_epoch=True,
        eta_min=0.,
        convert_to_iter_based=True)
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=5)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', interval=5, max_keep_ckpts=1))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0, diff_rank_seed=True)
