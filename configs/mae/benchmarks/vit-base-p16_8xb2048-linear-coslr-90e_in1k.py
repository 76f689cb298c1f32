# Linear probing of an MAE ViT-B/16 on ImageNet-1K (the paper's recipe: LARS,
# blr 0.1, batch 16384, 90 epochs, BatchNorm before the linear head), reused
# from mmpretrain. Set model.backbone.init_cfg.checkpoint as for fine-tuning.
_base_ = 'mmpretrain::mae/benchmarks/vit-base-p16_8xb2048-linear-coslr-90e_in1k.py'
custom_imports = dict(imports=['mmssl'], allow_failed_imports=False)
default_hooks = dict(random_state=dict(type='mmssl.RandomStateHook'))
