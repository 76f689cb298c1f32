# A tiny class-conditional DDPM (diffusers UNet2DModel with a class
# embedding, 1000 linear-beta steps, epsilon loss) on the embedded shapes
# classification data resized to 32 px: the stand-in for guided-diffusion's
# ImageNet-256 model in DiffFashion (tools/fashion_transfer.py). Trains on
# 2 CPU cores in about ten minutes.
_base_ = ['../_base_/default_runtime.py']

img_size = 32
num_classes = 9  # mmssl.datasets.SHAPE_CLASSES

model = dict(
    type='mmssl.ClassCondDDPM',
    unet=dict(
        sample_size=img_size,
        in_channels=3,
        out_channels=3,
        block_out_channels=(32, 64, 64),
        layers_per_block=1,
        down_block_types=('DownBlock2D', 'DownBlock2D', 'AttnDownBlock2D'),
        up_block_types=('AttnUpBlock2D', 'UpBlock2D', 'UpBlock2D'),
        attention_head_dim=32,
        norm_num_groups=8,
        num_class_embeds=num_classes),
    scheduler=dict(
        num_train_timesteps=1000,
        beta_schedule='linear',
        beta_start=1e-4,
        beta_end=0.02),
    data_preprocessor=dict(
        type='mmpretrain.ClsDataPreprocessor',
        mean=[127.5] * 3,
        std=[127.5] * 3,
        to_rgb=False))

data_root = 'data/embedded'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='Resize',
        scale=(img_size, img_size),
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs')
]
train_dataloader = dict(
    batch_size=64,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='mmssl.EmbeddedClsDataset',
        data_root=data_root,
        split='train',
        pipeline=train_pipeline))

max_epochs = 10
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.0),
    clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs,
        eta_min=1e-5,
        by_epoch=True,
        begin=0,
        end=max_epochs,
        convert_to_iter_based=True)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', interval=5, max_keep_ckpts=2))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
