# Fine-tuning of a data2vec 2.0 ViT-B/16 on ImageNet-1K, the reference recipe
# (fairseq examples/data2vec/config/vision/finetuning/mae_imagenet_clean.yaml
# with the mae_image_classification model): 16 GPUs x 32 images, 250,200
# updates (100 epochs), AdamW lr 1e-3 (0.9, 0.95) wd 0.05, layer decay 0.65,
# 16,000 warmup updates + cosine to 1e-6, drop path 0.1, mixup 0.7 / cutmix
# 1.0 applied to 90 % of the batches, label smoothing 0.1, mean-pooled
# patch tokens + LayerNorm + linear head. The rest (RandAugment, random
# erasing, evaluation) is mmpretrain's MAE fine-tuning config.
# Point it at a pretraining checkpoint with
#   --cfg-options model.backbone.init_cfg.checkpoint=work_dirs/.../iter_375300.pth
_base_ = 'mmpretrain::mae/benchmarks/vit-base-p16_8xb128-coslr-100e_in1k.py'
custom_imports = dict(imports=['mmssl'], allow_failed_imports=False)
default_hooks = dict(random_state=dict(type='mmssl.RandomStateHook'))

# one epoch of ImageNet-1K at 512 images per update
epoch_updates = 1281167 / 512
max_epochs = 100
warmup_epochs = 16000 / epoch_updates

train_dataloader = dict(batch_size=32)
val_dataloader = dict(batch_size=64)
test_dataloader = val_dataloader

model = dict(
    # the post-LN data2vec 2.0 encoder; layer names fit mmpretrain's
    # LearningRateDecayOptimWrapperConstructor (patch_embed / cls_token /
    # ln_pre at depth 0, layers.i at depth i + 1, ln_fc with the head)
    backbone=dict(
        _delete_=True,
        type='mmssl.D2V2ViT',
        arch='base',
        img_size=224,
        patch_size=16,
        drop_path_rate=0.1,
        out_type='avg_featmap',
        with_fc_norm=True,
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.')),
    head=dict(init_cfg=[dict(type='TruncNormal', layer='Linear', std=0.02)]),
    train_cfg=dict(
        augments=[
            dict(type='Mixup', alpha=0.7),
            dict(type='CutMix', alpha=1.0)
        ],
        probs=[0.45, 0.45]))

optim_wrapper = dict(
    optimizer=dict(
        type='AdamW', lr=1e-3, betas=(0.9, 0.95), weight_decay=0.05),
    paramwise_cfg=dict(layer_decay_rate=0.65))

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
        eta_min=1e-6,
        convert_to_iter_based=True)
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs)
auto_scale_lr = dict(base_batch_size=512)
