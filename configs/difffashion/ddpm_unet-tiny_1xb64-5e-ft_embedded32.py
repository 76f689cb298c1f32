# Five more epochs of the tiny class-conditional DDPM, started from the
# weights of ddpm_unet-tiny_1xb64-10e_embedded32.py (pass them with
# --cfg-options load_from=work_dirs/ddpm_tiny/epoch_10.pth); a lower,
# decaying learning rate. Used in README.md ("Mask quality") to see whether
# a better trained denoiser gives a better garment mask. About ten minutes
# on two CPU cores.
_base_ = ['./ddpm_unet-tiny_1xb64-10e_embedded32.py']

max_epochs = 5
optim_wrapper = dict(optimizer=dict(lr=3e-4))
param_scheduler = [
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs,
        eta_min=1e-5,
        by_epoch=True,
        begin=0,
        end=max_epochs,
        convert_to_iter_based=True)
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=5, max_keep_ckpts=1))
