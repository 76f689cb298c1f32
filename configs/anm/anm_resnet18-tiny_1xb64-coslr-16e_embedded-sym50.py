# ANM (adversarial noisy masking) on the embedded shapes with 50 % symmetric
# label noise: a CIFAR-format copy of the embedded classification data (9
# classes, 64 px; 2000 training images, the 500 validation images as test
# set), written to data/embedded_cifar on first use. A quarter-width
# ResNet-18 (ImageNet stem, last stage at stride 1: a 4x4 map) trains 8
# warm-up epochs of plain cross-entropy, then the label quality of every
# training image is refreshed before each epoch (GMM on the losses) and
# drives the masks, the label refinement and the softening; a decoder
# reconstructs the image from the masked views. A smoke run of the whole
# method on 2 CPU cores in a few minutes: AdamW with a one-cycle-like
# schedule and PyTorch's default init, with which this network
# learns the small set in a few epochs (with SGD 0.02-0.1 or mmpretrain's
# default ResNet init it stays near chance for 10+ epochs, clean labels
# included).
#   python tools/train.py configs/anm/anm_resnet18-tiny_1xb64-coslr-16e_embedded-sym50.py
# Other noise settings (README): --cfg-options train_dataloader.dataset.noise_rate=0.8
# The baseline: ce_resnet18-tiny_1xb64-coslr-16e_embedded-sym50.py
_base_ = ['../_base_/default_runtime.py']

max_epochs = 16
warmup_epochs = 8
num_classes = 9
# PackInputs keys that keep sample_idx and the clean label (NOISY_META_KEYS)
meta_keys = ('sample_idx', 'img_path', 'ori_shape', 'img_shape',
             'scale_factor', 'flip', 'flip_direction', 'gt_label_clean')

data_preprocessor = dict(
    type='ClsDataPreprocessor',
    num_classes=num_classes,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=False)  # the CIFAR-format arrays are RGB already

train_pipeline = [
    dict(type='RandomCrop', crop_size=64, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs', meta_keys=meta_keys),
]
# deterministic: the quality pass and the evaluation
test_pipeline = [dict(type='PackInputs', meta_keys=meta_keys)]

embedded_cifar = dict(
    type='mmssl.EmbeddedCIFARDataset', data_root='data/embedded_cifar')
train_dataloader = dict(
    batch_size=64,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='mmssl.NoisyLabelDataset',
        dataset=dict(embedded_cifar, split='train'),
        noise_type='symmetric',
        noise_rate=0.5,
        seed=0,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=250,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(embedded_cifar, split='test', pipeline=test_pipeline))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

model = dict(
    type='mmssl.ANMClassifier',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='ResNet',
        depth=18,
        stem_channels=16,
        base_channels=16,
        strides=(1, 2, 2, 1),
        out_indices=(3, ),
        zero_init_residual=False,
        # torch's default Conv2d init (kaiming_uniform, a = sqrt(5))
        init_cfg=[
            dict(
                type='Kaiming',
                layer='Conv2d',
                a=5**0.5,
                mode='fan_in',
                nonlinearity='leaky_relu',
                distribution='uniform'),
            dict(type='Constant', val=1, layer=['_BatchNorm', 'GroupNorm'])
        ]),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=num_classes,
        in_channels=128,
        loss=dict(type='CrossEntropyLoss'),
        init_cfg=None),  # torch's default Linear init, not N(0, 0.01)
    masking=dict(
        type='mmssl.AdversarialNoisyMasking',
        base_ratio=(0.02, 0.07),
        quality_coef=0.03,
        area_factor=0.5,
        anchor='center',
        locations=('max', 'min')),
    # 128 x 4 x 4 -> 16 -> 32 -> 3 x 64 x 64
    decoder=dict(
        type='mmssl.MaskReconstructionDecoder',
        in_channels=128,
        channels=(64, 32, 3),
        kernel_sizes=(4, 2, 2),
        strides=(4, 2, 2),
        out_size=64),
    loss_rec_weight=0.02,
    num_train_samples=2000,
    warmup_epochs=warmup_epochs,
    refine_labels=True,
    sharpen_temperature=0.5)

custom_hooks = [
    dict(
        type='mmssl.LabelQualityHook',
        interval=1,
        pipeline=test_pipeline,
        batch_size=250,
        gmm=dict(max_iter=10, tol=1e-2, reg_covar=5e-4),
        average_last=1)
]

optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.01))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.04,
        by_epoch=True,
        begin=0,
        end=3,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs - 3,
        by_epoch=True,
        begin=3,
        end=max_epochs,
        eta_min=0.,
        convert_to_iter_based=True)
]
# clean-label top-1 after every epoch (final and best of the run)
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', interval=4, max_keep_ckpts=1))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
# the decoder and the masked branch are idle during the warm-up
find_unused_parameters = True
randomness = dict(seed=0, diff_rank_seed=True)
