# DenseCL ResNet-50 on ImageNet-1K, the paper's recipe (Wang et al. 2021)
# on mmpretrain's config: batch 256 (8 x 32, drop_last), SGD lr 0.03,
# momentum 0.9, wd 1e-4, cosine to 0 over 200 epochs; queues of
# K = 65536 entries, feature width 128, temperature 0.2, key-encoder
# momentum m = 0.999 (mmengine EMA `momentum=0.001` = 1 - m),
# loss_lambda 0.5; DenseCLNeck(2048, 2048, 128) without BN. MoCo v2 views
# from mmpretrain's `imagenet_bs32_mocov2.py`: random resized crop 224
# (scale 0.2-1), colour jitter 0.4/0.4/0.4/0.1 with p 0.8, grayscale p 0.2,
# Gaussian blur sigma 0.1-2 with p 0.5, horizontal flip.
# Differences from mmpretrain's config, both following the authors' code:
# the neck's Linear layers get Kaiming (fan_in) init, and the
# lambda warm-up of the paper is on (lambda = 0 for the first 10000
# iterations, the value the authors give in WXinlong/DenseCL#16; their
# released configs and mmpretrain's 63.5 % linear-probe run leave it out:
# `--cfg-options custom_hooks=[]` reproduces that). Shuffle-BN needs
# several processes; on one device it degenerates (see README).
_base_ = 'mmpretrain::densecl/densecl_resnet50_8xb32-coslr-200e_in1k.py'

custom_imports = dict(imports=['mmssl'], allow_failed_imports=False)

model = dict(
    type='mmssl.DenseCL',
    neck=dict(
        init_cfg=dict(
            type='Kaiming',
            layer='Linear',
            mode='fan_in',
            nonlinearity='relu',
            distribution='normal',
            bias=0)),
    head=dict(_delete_=True, type='mmssl.DenseCLLoss', temperature=0.2))

custom_hooks = [dict(type='mmssl.DenseCLWarmupHook', start_iters=10000)]

default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=3),
    # random generator states in checkpoints, for exact --resume
    random_state=dict(type='mmssl.RandomStateHook'))
randomness = dict(seed=0, diff_rank_seed=True)
