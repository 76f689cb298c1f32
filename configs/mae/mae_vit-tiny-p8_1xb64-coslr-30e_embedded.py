# MAE with a tiny ViT on the embedded shapes data (64 px, patch 8): the
# default demo of mmssl. Runs on 2 CPU cores in a few minutes.
_base_ = [
    '../_base_/models/mae_vit-tiny-p8.py',
    '../_base_/datasets/embedded_bs64_mae.py',
    '../_base_/default_runtime.py',
]

max_epochs = 30
warmup_epochs = 3

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW',
        lr=1.5e-4 * 64 / 16,
        betas=(0.9, 0.95),
        weight_decay=0.05,
        # one fused kernel per parameter instead of ~10 element-wise passes:
        # the same update, the optimizer's share of the step halved
        # (configs/mae/README.md)
        fused=True),
    paramwise_cfg=dict(
        custom_keys={
            'ln': dict(decay_mult=0.0),
            'bias': dict(decay_mult=0.0),
            'pos_embed': dict(decay_mult=0.),
            'mask_token': dict(decay_mult=0.),
            'cls_token': dict(decay_mult=0.)
        }))

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs - warmup_epochs,
        by_epoch=True,
        begin=warmup_epochs,
        end=max_epochs,
        convert_to_iter_based=True)
]

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', interval=5, max_keep_ckpts=2))
custom_hooks = [
    dict(type='mmssl.ReconstructionVisHook', interval=10, num_images=8),
]

env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0, diff_rank_seed=True)
auto_scale_lr = dict(base_batch_size=64)
