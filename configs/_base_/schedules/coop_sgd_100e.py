# CoOp's recipe for 100 epochs (SubPT's base-to-novel setting), val at the
# end only.
_base_ = ['./coop_sgd.py']
max_epochs = 100
param_scheduler = [
    dict(type='ConstantLR', factor=1e-5 / 0.002, by_epoch=True, begin=0,
         end=1),
    dict(type='CosineAnnealingLR', T_max=max_epochs - 1, eta_min=0.,
         by_epoch=True, begin=1, end=max_epochs),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
