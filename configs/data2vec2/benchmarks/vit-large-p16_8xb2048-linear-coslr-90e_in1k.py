# Linear probing of a data2vec 2.0 ViT-L/16 on ImageNet-1K (frozen encoder,
# mean-pooled patch tokens, mmpretrain's MAE ViT-L linear-probe recipe).
# Set model.backbone.init_cfg.checkpoint as for fine-tuning.
_base_ = 'mmpretrain::mae/benchmarks/vit-large-p16_8xb2048-linear-coslr-90e_in1k.py'
custom_imports = dict(imports=['mmssl'], allow_failed_imports=False)
default_hooks = dict(random_state=dict(type='mmssl.RandomStateHook'))

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmssl.D2V2ViT',
        arch='large',
        img_size=224,
        patch_size=16,
        frozen_stages=24,
        out_type='avg_featmap',
        init_cfg=dict(type='Pretrained', checkpoint='', prefix='backbone.')))
