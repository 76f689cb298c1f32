# CoOp, base-to-novel on the embedded shapes (16 shots of 5 base classes),
# 30 epochs. CoOp's recipe except the learning rate: 0.5 instead of 0.002,
# because the small CLIP's logit scale is 13.8 (OpenAI's: 100) and 16 shots
# of 5 classes give 3 steps an epoch; at 0.002 the context does not move.
_base_ = [
    '../_base_/models/coop_tiny-rn.py',
    '../_base_/datasets/embedded32_base2novel.py',
    '../_base_/schedules/coop_sgd.py',
    '../_base_/default_runtime.py',
]
max_epochs = 30
lr = 0.5
optim_wrapper = dict(optimizer=dict(lr=lr))
param_scheduler = [
    dict(type='ConstantLR', factor=1e-5 / 0.002, by_epoch=True, begin=0,
         end=1),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 1, eta_min=0.,
         by_epoch=True, begin=1, end=max_epochs),
]
train_cfg = dict(max_epochs=max_epochs)
custom_hooks = [dict(type='mmssl.PromptClassNamesHook')]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=1))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=1)
