# ViT-B/16 trained from scratch on ImageNet-1K with the absolute positional
# label (APL) as auxiliary loss, the paper's main ViT result (77.91 ->
# 79.11 top-1): no CLS token, global average pooling for the class head,
# learned position embedding kept (as in the authors' ViT-B + APL). Each of
# the 14x14 patch tokens of the last block predicts its own grid cell (196
# classes) from its first 384 channels through an MLP 384-384-192;
# total loss = CE + 0.5 * CE_pos. Recipe of the authors' code: 2 GPUs x 256,
# AdamW lr 5e-4, 150 epochs (10 warm-up), mixup 0.8, label smoothing 0.1,
# drop path 0.1. Train with
#   bash tools/dist_train.sh configs/poslabel/poslabel-apl_vit-base-p16_2xb256-amp-150e_in1k.py 2
# The baseline (no positional head): vit-base-p16_2xb256-amp-150e_in1k.py
_base_ = [
    '../_base_/datasets/imagenet_bs256_poslabel.py',
    '../_base_/schedules/poslabel_adamw_150e.py',
    '../_base_/default_runtime.py',
]

model = dict(
    type='mmssl.PosLabelClassifier',
    backbone=dict(
        type='mmssl.PosLabelViT',
        arch='b',
        img_size=224,
        patch_size=16,
        with_cls_token=False,
        out_type='featmap',
        use_pos_embed=True,
        drop_path_rate=0.1),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=768,
        init_cfg=None,  # the model's init_cfg below
        loss=dict(
            type='mmssl.LabelSmoothLoss',
            label_smooth_val=0.1,
            mode='original'),
        cal_acc=False),
    pos_head=dict(
        type='mmssl.AbsPosLabelHead',
        in_channels=768,
        grid_size=14,
        mlp_dims=(384, 192),
        loss_weight=0.5),
    # the reference initialises every Linear with trunc-normal std 0.01
    init_cfg=[
        dict(type='TruncNormal', layer='Linear', std=0.01, bias=0.0),
        dict(type='Constant', layer='LayerNorm', val=1.0, bias=0.0)
    ],
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8)]))

# The position embedding is weight-decayed, as in the reference (only 1-D
# parameters are exempt there).

default_hooks = dict(
    checkpoint=dict(
        type='CheckpointHook', interval=10, max_keep_ckpts=3,
        save_best='auto'))
