# Linear probing of a data2vec 2.0 ViT-B/16 on ImageNet-1K: the frozen
# encoder's mean-pooled patch tokens (the reference pooling; data2vec 2.0 has
# no final norm), then mmpretrain's MAE linear-probe recipe (BatchNorm
# without affine + linear head, LARS lr 6.4 for batch 16384, 90 epochs).
# Set model.backbone.init_cfg.checkpoint as for fine-tuning.
_base_ = 'mmpretrain::mae/benchmarks/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py'
custom_imports = dict(imports=['mmssl'], allow_failed_imports=False)
default_hooks = dict(random_state=dict(type='mmssl.RandomStateHook'))

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmssl.D2V2ViT',
        arch='base',
        img_size=224,
        patch_size=16,
        frozen_stages=12,
        out_type='avg_featmap',
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.')))
