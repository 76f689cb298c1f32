# Swin-B trained from scratch on ImageNet-1K with the relative positional
# label (RPL) as auxiliary loss, the paper's main Swin result (83.35 ->
# 84.09 top-1). As in the authors' Swin + RPL, the window attention has no
# relative position bias and there is no absolute embedding: the model has
# no explicit positional encoding and learns position only through the
# label. On the last stage (a 7x7 grid = one 7x7 window, 1024 channels)
# every ordered pair (i, j) of its 49 tokens predicts its offset (169
# classes) from [first half of token i; second half of token j] through an
# MLP 1024-384-384; total loss = CE + 0.5 * CE_rel. Recipe of the authors'
# code: 2 GPUs x 320, AdamW lr 5e-4 x 640 / 512, 150 epochs (20 warm-up),
# mixup 0.8 + cutmix 1.0, label smoothing 0.1, drop path 0.5. Train with
#   bash tools/dist_train.sh configs/poslabel/poslabel-rpl_swin-base_2xb320-amp-150e_in1k.py 2
# The baseline (plain Swin-B with its bias): swin-base_2xb320-amp-150e_in1k.py
_base_ = [
    '../_base_/datasets/imagenet_bs256_poslabel.py',
    '../_base_/schedules/poslabel_adamw_150e.py',
    '../_base_/default_runtime.py',
]

model = dict(
    type='mmssl.PosLabelClassifier',
    backbone=dict(
        type='mmssl.PosLabelSwin',
        arch='base',
        img_size=224,
        window_size=7,
        out_indices=(3, ),
        use_rel_pos_bias=False,
        drop_path_rate=0.5),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=1000,
        in_channels=1024,
        init_cfg=None,  # the model's init_cfg below
        loss=dict(
            type='mmssl.LabelSmoothLoss',
            label_smooth_val=0.1,
            mode='original'),
        cal_acc=False),
    pos_head=dict(
        type='mmssl.RelPosLabelHead',
        in_channels=1024,
        grid_size=7,
        window_size=7,
        mlp_dims=(384, 384),
        loss_weight=0.5),
    init_cfg=[
        dict(type='TruncNormal', layer='Linear', std=0.02, bias=0.0),
        dict(type='Constant', layer='LayerNorm', val=1.0, bias=0.0)
    ],
    train_cfg=dict(augments=[
        dict(type='Mixup', alpha=0.8),
        dict(type='CutMix', alpha=1.0)
    ]))

train_dataloader = dict(batch_size=320)

# lr 5e-4 per 512 images for the total batch 2 x 320 = 640; 20 warm-up
# epochs (Swin's recipe) instead of the ViT's 10
optim_wrapper = dict(optimizer=dict(lr=5e-4 * 640 / 512))
max_epochs = 150
warmup_epochs = 20
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs - warmup_epochs,
        eta_min_ratio=1e-2,
        by_epoch=True,
        begin=warmup_epochs,
        end=max_epochs,
        convert_to_iter_based=True)
]
auto_scale_lr = dict(base_batch_size=640)

default_hooks = dict(
    checkpoint=dict(
        type='CheckpointHook', interval=10, max_keep_ckpts=3,
        save_best='auto'))
