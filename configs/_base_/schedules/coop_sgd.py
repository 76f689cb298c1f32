# CoOp's recipe: SGD lr 0.002, momentum 0.9, weight decay 5e-4, one warm-up
# epoch at a constant lr of 1e-5, then cosine to 0; batch 32.
max_epochs = 50
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.002, momentum=0.9, weight_decay=5e-4))
# mmengine's ConstantLR gives the lr back on the step that reaches
# end - begin - 1, so the one warm-up epoch needs end=2 (end=1 would keep
# the warm-up factor for the whole run)
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
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()
