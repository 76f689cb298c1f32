# Supervised tiny Swin (48-d, 3 stages of depth 2/2/4, patch 4, window 4)
# from scratch on the embedded shapes, with the relative positional label
# (RPL) as auxiliary loss on the last stage (a 4x4 token grid = one 4x4
# window): every ordered pair of its 16 tokens predicts its offset (49
# classes) from [first half of token i; second half of token j]. As in the
# reference, the window attention has no relative position bias and there
# is no absolute embedding: position is learned through the label only.
#   python tools/train.py configs/poslabel/poslabel-rpl_swin-tiny-w4_1xb64-coslr-20e_embedded.py
# The baseline (plain Swin with its bias): swin-tiny-w4_1xb64-coslr-20e_embedded.py
_base_ = [
    '../_base_/datasets/embedded_bs64_cls.py',
    '../_base_/schedules/embedded_adamw_20e.py',
    '../_base_/default_runtime.py',
]

model = dict(
    type='mmssl.PosLabelClassifier',
    backbone=dict(
        type='mmssl.PosLabelSwin',
        arch=dict(embed_dims=48, depths=[2, 2, 4], num_heads=[3, 6, 12]),
        img_size=64,
        patch_size=4,
        window_size=4,
        out_indices=(2, ),  # the last stage: 16x16 patches halved twice
        use_rel_pos_bias=False,
        drop_path_rate=0.1),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=9,
        in_channels=192,
        loss=dict(
            type='mmssl.LabelSmoothLoss',
            label_smooth_val=0.1,
            mode='original')),
    pos_head=dict(
        type='mmssl.RelPosLabelHead',
        in_channels=192,
        grid_size=4,
        window_size=4,
        mlp_dims=(192, 192),  # the reference's (384, 384) at half width
        loss_weight=0.5),
    init_cfg=[
        dict(type='TruncNormal', layer='Linear', std=0.02),
        dict(type='Constant', layer='LayerNorm', val=1.0, bias=0.0)
    ])

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', interval=5, max_keep_ckpts=2))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0, diff_rank_seed=True)
