# data2vec 2.0 ViT-B/16 on ImageNet-1K, the reference recipe (fairseq
# examples/data2vec/config/v2/base_images_only_task.yaml): 16 GPUs x 16
# images, 16 inverse-block masks per image (80 % masked, blocks of 3, adjust
# 0.07), 6-layer conv decoder, EMA teacher 0.9998 -> 0.99999 over 100k
# updates, top-10 FFN targets with instance norm + final LN, CLS loss 0.01,
# AdamW lr 1e-3 (0.9, 0.95) wd 0.05 (none on biases / norms / 1-D params),
# 50,040 warmup + cosine to 375,300 updates, grad clip 4, fp16.
# 375,300 updates x 256 images = 75 epochs on 16 GPUs; the updates are the
# canonical length (see README.md).
_base_ = ['../_base_/default_runtime.py']

patch_size = 16
img_size = 224

model = dict(
    type='mmssl.Data2VecV2',
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True),
    backbone=dict(
        type='mmssl.D2V2ViT',
        arch='base',
        img_size=img_size,
        patch_size=patch_size,
        norm_eps=1e-6),
    neck=dict(
        type='mmssl.D2V2ConvDecoder2d',
        in_channels=768,
        embed_dims=768,
        num_layers=6,
        kernel_size=3,
        groups=16,
        noise_std=0.01),
    head=dict(
        type='mmssl.D2V2Head',
        top_k=10,
        instance_norm=True,
        layer_norm=True,
        cls_loss_weight=0.01,
        loss=dict(type='mmssl.D2V2RegressionLoss', beta=0.)),
    ema=dict(momentum=2e-4, end_momentum=1e-5, anneal_iters=100000))

# ImageNet-1K: RandomResizedCrop(224, 0.2-1, bicubic) + flip, no colour
# jitter; M masks per image packed into the data samples.
data_root = 'data/imagenet/'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=img_size,
        crop_ratio_range=(0.2, 1.0),
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    # the M masks per image (the clone batch), drawn in the data workers;
    # the model reads them from the data samples and has no mask settings
    dict(
        type='mmssl.InverseBlockMaskGenerator',
        input_size=img_size // patch_size,
        mask_ratio=0.8,
        num_masks=16,
        block_size=3,
        adjust=0.07),
    dict(type='PackInputs', algorithm_keys=['mask'])
]
train_dataloader = dict(
    batch_size=16,
    num_workers=10,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='ImageNet',
        data_root=data_root,
        split='train',
        pipeline=train_pipeline))

max_iters = 375300
warmup_iters = 50040

optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    clip_grad=dict(max_norm=4.0),
    optimizer=dict(
        type='AdamW', lr=1e-3, betas=(0.9, 0.95), weight_decay=0.05),
    paramwise_cfg=dict(
        bias_decay_mult=0., norm_decay_mult=0., flat_decay_mult=0.))

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-6,
        by_epoch=False,
        begin=0,
        end=warmup_iters),
    dict(
        type='CosineAnnealingLR',
        T_max=max_iters - warmup_iters,
        eta_min=0.,
        by_epoch=False,
        begin=warmup_iters,
        end=max_iters)
]

train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=200),
    checkpoint=dict(
        type='CheckpointHook',
        by_epoch=False,
        interval=25000,
        max_keep_ckpts=2))
# the EMA teacher moves after every optimizer update
custom_hooks = [dict(type='mmssl.TeacherUpdateHook')]
log_processor = dict(by_epoch=False)

randomness = dict(seed=0, diff_rank_seed=True)
# resume automatically from the last checkpoint of the work dir
resume = True
# lr 1e-3 is for 16 x 16 = 256 images per update
auto_scale_lr = dict(base_batch_size=256)
