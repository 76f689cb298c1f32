# ANM on Clothing1M (real label noise, 14 classes): an ImageNet-pretrained
# ResNet-50 with SANM's Clothing1M masking (ratio U(0.06, 0.13) + 0.1 (1 - w))
# and its ResNet-50 decoder (2048 x 7 x 7 -> 3 x 224 x 224), on the 1M noisy
# training images; the clean validation and test images evaluate.
#   python tools/train.py configs/anm/anm_resnet50_1xb32-4e_clothing1m.py
# Data: the released Clothing1M folder in data/clothing1m (images/,
# noisy_label_kv.txt, clean_label_kv.txt, noisy_train_key_list.txt,
# clean_val_key_list.txt, clean_test_key_list.txt, category_names_eng.txt).
# DivideMix's Clothing1M optimiser (SGD lr 0.002, momentum 0.9, wd 1e-3,
# batch 32, lr / 10 halfway); its 80 "epochs" of 1000 batches are about
# 2.6 passes over the data, mmssl counts real passes: 1 warm-up epoch of
# cross-entropy, then 3 epochs with the quality refreshed before each
# (the refresh reads the 1M training images once, in eval mode).
_base_ = ['../_base_/default_runtime.py']

max_epochs = 4
warmup_epochs = 1
num_classes = 14
data_root = 'data/clothing1m'
meta_keys = ('sample_idx', 'img_path', 'ori_shape', 'img_shape',
             'scale_factor', 'flip', 'flip_direction', 'gt_label_clean')

# DivideMix's Clothing1M normalisation, in 0..255
data_preprocessor = dict(
    type='ClsDataPreprocessor',
    num_classes=num_classes,
    mean=[177.46, 166.69, 163.28],
    std=[79.38, 81.40, 81.96],
    to_rgb=True)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short'),
    dict(type='RandomCrop', crop_size=224),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs', meta_keys=meta_keys),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs', meta_keys=meta_keys),
]

train_dataloader = dict(
    batch_size=32,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='mmssl.Clothing1M',
        data_root=data_root,
        split='noisy_train',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=128,
    num_workers=8,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='mmssl.Clothing1M',
        data_root=data_root,
        split='clean_val',
        pipeline=test_pipeline))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = dict(
    batch_size=128,
    num_workers=8,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='mmssl.Clothing1M',
        data_root=data_root,
        split='clean_test',
        pipeline=test_pipeline))
test_evaluator = val_evaluator

model = dict(
    type='mmssl.ANMClassifier',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='ResNet',
        depth=50,
        out_indices=(3, ),
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.openmmlab.com/mmclassification/v0/'
            'resnet/resnet50_8xb32_in1k_20210831-ea4938fc.pth',
            prefix='backbone')),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=num_classes,
        in_channels=2048,
        loss=dict(type='CrossEntropyLoss')),
    masking=dict(
        type='mmssl.AdversarialNoisyMasking',
        base_ratio=(0.06, 0.13),
        quality_coef=0.1,
        area_factor=0.5,
        aspect=(0.8, 1.25),
        anchor='center',
        locations=('max', 'min'),
        fill='uniform_const'),
    decoder=dict(type='mmssl.MaskReconstructionDecoder', preset='imagenet'),
    loss_rec_weight=0.02,
    # the length of noisy_train_key_list.txt (the hook checks it)
    num_train_samples=1000000,
    warmup_epochs=warmup_epochs,
    refine_labels=True,
    sharpen_temperature=0.5)

custom_hooks = [
    dict(
        type='mmssl.LabelQualityHook',
        interval=1,
        pipeline=test_pipeline,
        batch_size=256,
        gmm=dict(max_iter=10, tol=1e-2, reg_covar=5e-4),
        average_last=1)
]

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.002, momentum=0.9, weight_decay=1e-3))
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=True, milestones=[3], gamma=0.1)
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=32)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=500),
    checkpoint=dict(
        type='CheckpointHook',
        interval=1,
        max_keep_ckpts=2,
        save_best='accuracy/top1',
        rule='greater'))
# the decoder and the masked branch are idle during the warm-up
find_unused_parameters = True
randomness = dict(seed=0, diff_rank_seed=True)
