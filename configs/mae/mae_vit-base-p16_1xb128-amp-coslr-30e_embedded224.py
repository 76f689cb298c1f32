# MAE ViT-B/16 on the embedded shapes data drawn at 224 px, one GPU, bf16
# autocast: the reference side of the ViT-B-size data2vec 2.0 vs MAE
# time-to-accuracy comparison (configs/data2vec2/README.md). The model is the
# paper's (75 % masking, 8-block 512-d decoder, normalised pixels); batch,
# learning rate and schedule are scaled to a short run on 2,000 images.
# Needs a CUDA device (bf16 autocast); on a CPU add
# --cfg-options optim_wrapper.type=OptimWrapper.
_base_ = [
    '../_base_/models/mae_vit-base-p16.py',
    '../_base_/datasets/embedded224_bs128_mae.py',
    '../_base_/default_runtime.py',
]

max_epochs = 30
warmup_epochs = 3

optim_wrapper = dict(
    type='AmpOptimWrapper',
    dtype='bfloat16',
    optimizer=dict(
        type='AdamW',
        lr=1.5e-4 * 128 / 64,
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
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', interval=5, max_keep_ckpts=2))
custom_hooks = [
    dict(type='mmssl.ReconstructionVisHook', interval=10, num_images=8),
]

randomness = dict(seed=0, diff_rank_seed=True)
auto_scale_lr = dict(base_batch_size=128)
