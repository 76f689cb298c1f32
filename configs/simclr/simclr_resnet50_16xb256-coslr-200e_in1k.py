# SimCLR ResNet-50 on ImageNet-1K, the paper's recipe (Chen et al. 2020,
# Appendix B.1 / the official README): batch 4096 (16 x 256), LARS with
# lr 0.3 x 4096 / 256 = 4.8, momentum 0.9, wd 1e-6 (BN and biases excluded
# from wd and from the trust ratio), 10 linear warm-up epochs then cosine
# decay per step, temperature 0.1, 2-layer 2048-2048-128 projection MLP,
# SyncBN everywhere. mmpretrain's config is reused for the data pipeline
# (crop 0.08-1, flip, colour jitter 0.8/0.8/0.8/0.2 with p 0.8 in random
# order, grayscale p 0.2, Gaussian blur sigma 0.1-2 with p 0.5) and the
# model/optimizer; mmssl changes the loss (exact distributed gradient) and
# decays the cosine per iteration as the paper does.
_base_ = 'mmpretrain::simclr/simclr_resnet50_16xb256-coslr-200e_in1k.py'

custom_imports = dict(imports=['mmssl'], allow_failed_imports=False)

max_epochs = 200
warmup_epochs = 10

model = dict(
    type='mmssl.SimCLR',
    head=dict(_delete_=True, type='mmssl.NTXentLoss', temperature=0.1))

optim_wrapper = dict(
    optimizer=dict(
        type='LARS', lr=0.3 * 4096 / 256, momentum=0.9, weight_decay=1e-6))

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
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=3),
    # random generator states in checkpoints, for exact --resume
    random_state=dict(type='mmssl.RandomStateHook'))
randomness = dict(seed=0, diff_rank_seed=True)
auto_scale_lr = dict(base_batch_size=4096)
