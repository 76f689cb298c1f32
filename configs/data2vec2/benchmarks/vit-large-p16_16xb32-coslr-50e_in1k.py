# Fine-tuning of a data2vec 2.0 ViT-L/16 on ImageNet-1K, the reference recipe
# (fairseq .../vision/finetuning/mae_imagenet_large_clean.yaml): 16 GPUs x 32
# images, 125,200 updates (50 epochs), AdamW lr 5e-4 (0.9, 0.95) wd 0.05,
# layer decay 0.75, 16,000 warmup updates + cosine to 1e-7, drop path 0.2,
# grad clip 4, mixup 0.7 / cutmix 1.0 on 90 % of the batches. The paper
# reports 86.8 % top-1 for the 150-epoch ViT-L.
_base_ = 'mmpretrain::mae/benchmarks/vit-large-p16_8xb128-coslr-50e_in1k.py'
custom_imports = dict(imports=['mmssl'], allow_failed_imports=False)
default_hooks = dict(random_state=dict(type='mmssl.RandomStateHook'))

epoch_updates = 1281167 / 512
max_epochs = 50
warmup_epochs = 16000 / epoch_updates

train_dataloader = dict(batch_size=32)
val_dataloader = dict(batch_size=64)
test_dataloader = val_dataloader

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmssl.D2V2ViT',
        arch='large',
        img_size=224,
        patch_size=16,
        drop_path_rate=0.2,
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
    clip_grad=dict(max_norm=4.0),
    optimizer=dict(
        type='AdamW', lr=5e-4, betas=(0.9, 0.95), weight_decay=0.05),
    paramwise_cfg=dict(layer_decay_rate=0.75))

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
        eta_min=1e-7,
        convert_to_iter_based=True)
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs)
auto_scale_lr = dict(base_batch_size=512)
