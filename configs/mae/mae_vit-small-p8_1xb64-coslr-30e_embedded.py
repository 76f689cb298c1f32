# MAE with a ViT-S/8 encoder (384-d, 12 blocks, 6 heads, MLP 1536: DeiT-S,
# which is mmpretrain's arch 'deit-s'; its arch 's' is a different, 768-d
# net) on the embedded shapes data (64 px, 64 patches), with the tiny
# config's 2-block 128-d decoder, data and schedule.
_base_ = './mae_vit-tiny-p8_1xb64-coslr-30e_embedded.py'

model = dict(
    backbone=dict(
        arch=dict(
            embed_dims=384,
            num_layers=12,
            num_heads=6,
            feedforward_channels=1536)),
    neck=dict(embed_dim=384))
