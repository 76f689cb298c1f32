# Supervised ViT-tiny (192-d, 6 blocks, patch 8, no CLS token, global
# average pooling) from scratch on the embedded shapes, with the absolute
# positional label (APL) as auxiliary loss: each of the 8x8 patch tokens of
# the last block predicts its own grid cell (64 classes) from half of its
# channels; total loss = CE + 0.5 * CE_pos. Runs on 2 CPU cores:
#   python tools/train.py configs/poslabel/poslabel-apl_vit-tiny-p8_1xb64-coslr-20e_embedded.py
# The baseline of the same schedule: vit-tiny-p8_1xb64-coslr-20e_embedded.py
_base_ = [
    '../_base_/datasets/embedded_bs64_cls.py',
    '../_base_/schedules/embedded_adamw_20e.py',
    '../_base_/default_runtime.py',
]

model = dict(
    type='mmssl.PosLabelClassifier',
    backbone=dict(
        type='mmssl.PosLabelViT',
        arch=dict(
            embed_dims=192,
            num_layers=6,
            num_heads=3,
            feedforward_channels=768),
        img_size=64,
        patch_size=8,
        with_cls_token=False,
        out_type='featmap',
        use_pos_embed=True,  # the reference's ViT-B + APL keeps it
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
        type='mmssl.AbsPosLabelHead',
        in_channels=192,
        grid_size=8,
        mlp_dims=(192, 96),  # the reference's (384, 192) at 1/4 width
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
