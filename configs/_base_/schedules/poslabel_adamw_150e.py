# The positional-label schedule (the authors' code, on Swin Transformer's
# training recipe): AdamW, base lr 5e-4 per 512 images (here for a total
# batch of 2 x 256 = 512), weight decay 0.05 except on norms, biases and
# other 1-D parameters, gradient clipping at norm 5.0, mixed precision
# (the reference trains with torch AMP), 150 epochs: 10 epochs of linear
# warm-up from 1e-3 x lr (5e-7), then cosine decay to 1 % of the peak
# (5e-6). The warm-up start and the final lr scale with the peak, as in the
# reference, also under --auto-scale-lr.
max_epochs = 150
warmup_epochs = 10

optim_wrapper = dict(
    type='AmpOptimWrapper',
    loss_scale='dynamic',
    optimizer=dict(
        type='AdamW',
        lr=5e-4 * 512 / 512,
        weight_decay=0.05,
        eps=1e-8,
        betas=(0.9, 0.999)),
    clip_grad=dict(max_norm=5.0),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        flat_decay_mult=0.0,
        custom_keys={
            '.absolute_pos_embed': dict(decay_mult=0.0),
            '.relative_position_bias_table': dict(decay_mult=0.0)
        }))

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs - warmup_epochs,
        eta_min_ratio=1e-2,
        by_epoch=True,
        begin=warmup_epochs,
        end=max_epochs,
        convert_to_iter_based=True)
]

train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()

# the total batch the lr above is for (--auto-scale-lr rescales it)
auto_scale_lr = dict(base_batch_size=512)
