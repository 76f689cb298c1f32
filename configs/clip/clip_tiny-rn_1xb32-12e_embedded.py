# Pretrain a small CLIP on the embedded shapes (32 px) with generated
# captions (shape, colour, texture, size, distractors), 12 epochs on CPU. The
# first, weak setting (14.6 % zero-shot on the 2-core CPU; the figure moves by
# several points with the seed and the number of CPU threads, see
# configs/clip/README.md); the CoOp / SubPT *_embedded-b2n.py configs use
# clip_tiny-rn_1xb128-150e_embedded.py (see its header).
_base_ = [
    '../_base_/models/clip_tiny-rn.py',
    '../_base_/datasets/embedded32_captions.py',
    '../_base_/default_runtime.py',
]

max_epochs = 12
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.98), weight_decay=0.1),
    paramwise_cfg=dict(
        custom_keys={
            'logit_scale': dict(decay_mult=0.),
            'positional_embedding': dict(decay_mult=0.),
            'ln': dict(decay_mult=0.),
            'bn': dict(decay_mult=0.),
            'bias': dict(decay_mult=0.)
        }))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=True,
        begin=0,
        end=1,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs - 1,
        eta_min=1e-5,
        by_epoch=True,
        begin=1,
        end=max_epochs,
        convert_to_iter_based=True)
]
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=4)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', interval=4, max_keep_ckpts=1))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
