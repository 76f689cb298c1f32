# The paper's longest schedule (1600 epochs; 83.6 fine-tuned top-1).
_base_ = './mae_vit-base-p16_8xb512-amp-coslr-800e_in1k.py'

max_epochs = 1600
warmup_epochs = 40
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
        convert_to_iter_based=True)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
