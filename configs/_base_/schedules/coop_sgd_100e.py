# CoOp's recipe for 100 epochs (SubPT's base-to-novel setting), val at the
# end only.
_base_ = ['./coop_sgd.py']
max_epochs = 100
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
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
