# lightly 1.6's MAE at ViT-B/16 (timm ViT-B/16 + lightly's 512 x 8 decoder,
# 75 % masking, normalised pixels of the masked patches), the benchmark peer
# of mmssl's MAE (needs `pip install --no-deps -r requirements/benchmark.txt`).
# Child configs that inherit an mmssl MAE config take these two settings:
#   model = {{_base_.lightly_mae_model}}
#   optim_wrapper = dict(optimizer=dict(fused=None),
#                        paramwise_cfg={{_base_.lightly_paramwise_cfg}})
lightly_mae_model = dict(
    _delete_=True,
    type='mmssl.LightlyMAE',
    vit='vit_base_patch16_224',
    img_size=224,
    decoder_dim=512,
    decoder_depth=8,
    decoder_num_heads=16,
    mask_ratio=0.75,
    norm_pix=True,
    data_preprocessor=dict(
        type='SelfSupDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        to_rgb=True))
# timm names its LayerNorms norm*, not ln*: no weight decay on them, as in
# lightly's benchmark (get_weight_decay_parameters) and mmssl's config
lightly_paramwise_cfg = dict(
    _delete_=True,
    custom_keys={
        'norm': dict(decay_mult=0.0),
        'bias': dict(decay_mult=0.0),
        'pos_embed': dict(decay_mult=0.),
        'mask_token': dict(decay_mult=0.),
        'cls_token': dict(decay_mult=0.)
    })
