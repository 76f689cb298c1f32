# MAE ViT-B/16 on ImageNet-1K, the paper's recipe (He et al. 2022, Table 8 /
# the official PRETRAIN.md): 800 epochs, batch 4096, base lr 1.5e-4 per 256,
# AdamW (0.9, 0.95), wd 0.05, 40 warmup epochs + half-cycle cosine, norm-pix.
_base_ = [
    '../_base_/models/mae_vit-base-p16.py',
    '../_base_/datasets/imagenet_bs512_mae.py',
    '../_base_/default_runtime.py',
]

max_epochs = 800
warmup_epochs = 40

optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(
        type='AdamW',
        lr=1.5e-4 * 4096 / 256,
        betas=(0.9, 0.95),
        weight_decay=0.05,
        # one fused kernel per parameter group instead of ~10 element-wise
        # passes: the same update, 3-5x faster on CPU (configs/mae/README.md)
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
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3))
custom_hooks = [
    dict(type='mmssl.ReconstructionVisHook', interval=50, num_images=8),
]

randomness = dict(seed=0, diff_rank_seed=True)
# resume automatically from the last checkpoint of the work dir
resume = True
auto_scale_lr = dict(base_batch_size=4096)
