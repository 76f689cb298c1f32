# Fine-tuning of an MAE ViT-B/16 on ImageNet-1K (the paper's recipe: 100
# epochs, batch 1024, blr 5e-4, layer decay 0.65, drop path 0.1, mixup 0.8,
# cutmix 1.0, RandAugment, random erasing 0.25), reused from mmpretrain.
# Point it at a pretraining checkpoint with
#   --cfg-options model.backbone.init_cfg.checkpoint=work_dirs/.../epoch_800.pth
_base_ = 'mmpretrain::mae/benchmarks/vit-base-p16_8xb128-coslr-100e_in1k.py'
custom_imports = dict(imports=['mmssl'], allow_failed_imports=False)
default_hooks = dict(random_state=dict(type='mmssl.RandomStateHook'))
