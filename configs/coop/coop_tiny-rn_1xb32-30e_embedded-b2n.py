# CoOp, base-to-novel on the embedded shapes (16 shots of 5 base classes),
# 30 epochs. CoOp's recipe except the learning rate: 0.5 instead of 0.002,
# because the small CLIP's logit scale is 19.0 (OpenAI's: 100) and 16 shots
# of 5 classes give 3 steps an epoch; at 0.002 the context hardly moves.
_base_ = [
    '../_base_/models/coop_tiny-rn.py',
    '../_base_/datasets/embedded32_base2novel.py',
    '../_base_/schedules/coop_sgd.py',
    '../_base_/default_runtime.py',
]
# the frozen CLIP: configs/clip/clip_tiny-rn_1xb128-150e_embedded.py trained
# with --work-dir work_dirs/clip_tiny_b128
model = dict(clip=dict(checkpoint='work_dirs/clip_tiny_b128/epoch_150.pth'))
max_epochs = 30
lr = 0.5
optim_wrapper = dict(optimizer=dict(lr=lr))
# the warm-up epoch: mmengine's ConstantLR restores the lr on the step that
# reaches end - begin - 1, so end=1 would never restore it (the factor would
# stay for the whole run); end=2 gives 1e-5/0.002 * lr in epoch 1 only
param_scheduler = [
    dict(
        type='ConstantLR', factor=1e-5 / 0.002, by_epoch=True, begin=0, end=2),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs - 1,
        eta_min=0.,
        by_epoch=True,
        begin=1,
        end=max_epochs),
]
train_cfg = dict(max_epochs=max_epochs)
custom_hooks = [dict(type='mmssl.PromptClassNamesHook')]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10),
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=1))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=1)
