# SubTuning of a SimCLR ResNet-50 (configs/simclr, ImageNet-1K) on CIFAR-10,
# the spec's ResNet-50 recipe: 224 px inputs, AdamW lr 1e-3 / wd 1e-2,
# cosine over 10 epochs, batch 256, mixed precision; only the blocks of
# `trainable_blocks` and the linear head train.
# The blocks here are the last stage; choose them for your data with
#   python tools/analysis_tools/subtuning_search.py greedy CONFIG ...
# and put the snippet it writes in place of `trainable_blocks`.
# Scarce data (the paper's 1k-image CIFAR-10):
#   --cfg-options train_dataloader.dataset.fraction=0.02
# Data: the python version of CIFAR-10 unpacked in data/cifar10
# (cifar-10-batches-py); nothing is downloaded.
_base_ = ['../_base_/default_runtime.py']

pretrained = 'work_dirs/simclr_resnet50_16xb256-coslr-200e_in1k/epoch_200.pth'  # noqa
data_root = 'data/cifar10'
max_epochs = 10
batch_size = 256

model = dict(
    type='mmssl.SubTuningClassifier',
    trainable_blocks=['layer4.0', 'layer4.1', 'layer4.2'],
    data_preprocessor=dict(
        type='ClsDataPreprocessor',
        num_classes=10,
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=False),
    backbone=dict(
        type='ResNet',
        depth=50,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=2048,
        loss=dict(type='CrossEntropyLoss')))

train_pipeline = [
    dict(type='RandomResizedCrop', scale=224, crop_ratio_range=(0.5, 1.0)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs')
]
test_pipeline = [dict(type='Resize', scale=224), dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='mmssl.LabelFractionDataset',
        fraction=1.0,
        seed=0,
        dataset=dict(
            type='CIFAR10', data_root=data_root, split='train',
            download=False),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=batch_size,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='CIFAR10',
        data_root=data_root,
        split='test',
        download=False,
        pipeline=test_pipeline))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

optim_wrapper = dict(
    type='AmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=1e-2))
param_scheduler = [
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs,
        by_epoch=True,
        eta_min=0.,
        convert_to_iter_based=True)
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=2))
auto_scale_lr = dict(base_batch_size=256)
randomness = dict(seed=0)
