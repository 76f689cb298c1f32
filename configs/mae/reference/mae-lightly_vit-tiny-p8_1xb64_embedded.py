# The lightly peer of configs/mae/mae_vit-tiny-p8_1xb64-coslr-30e_embedded.py:
# lightly 1.6's MAE (timm ViT, 192-d, 6 blocks, patch 8, + lightly's decoder,
# 128-d, 2 blocks: the sizes of the mmssl config; 75 % masking, normalised
# pixels of the masked patches) with the same data preprocessor,
# optimizer and schedule, for side-by-side benchmarks (needs
# `pip install --no-deps -r requirements/benchmark.txt`), e.g.
#   python tools/analysis_tools/benchmark_train.py \
#       configs/mae/mae_vit-tiny-p8_1xb64-coslr-30e_embedded.py \
#       configs/mae/reference/mae-lightly_vit-tiny-p8_1xb64_embedded.py \
#       --names mmssl lightly --threads 2
_base_ = [
    '../mae_vit-tiny-p8_1xb64-coslr-30e_embedded.py',
    '../../_base_/models/mae-lightly_vit-base-p16.py'
]

model = dict(
    _delete_=True,
    type='mmssl.LightlyMAE',
    vit='vit_tiny_patch16_224',
    img_size=64,
    patch_size=8,
    vit_kwargs=dict(depth=6),
    decoder_dim=128,
    decoder_depth=2,
    decoder_num_heads=4,
    mask_ratio=0.75,
    norm_pix=True,
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True))
# no weight decay on timm's norm* layers, biases, tokens and positions, as
# in lightly's benchmark; torch's AdamW defaults (lightly's)
optim_wrapper = dict(
    optimizer=dict(fused=None), paramwise_cfg={{_base_.lightly_paramwise_cfg}})
# the reconstruction picture hook needs mmssl's MAE.reconstruct
custom_hooks = []
