# UperNet on a ViT-B/16 pretrained by data2vec 2.0, Pascal VOC 2012 + SBD aug
# (data/VOCdevkit, 21 classes): the recipe of
# upernet_vit-b16-mae_4xb4-40k_voc12aug-512x512.py (layer-wise lr decay 0.65)
# with data2vec 2.0's post-LN ViT, mmssl.D2V2ViT. `pretrained` is the
# `convert_backbone.py --to mmpretrain` export of the last checkpoint of
# configs/data2vec2/data2vec2_vit-base-p16_16xb16-amp-coslr-375k_in1k.py
# (commands: configs/transfer/README.md, "Full-size runs").
# D2V2ViT needs inputs that are a multiple of the patch size: test images are
# padded to a multiple of 16 (the padding is cut off the prediction).
_base_ = './upernet_vit-b16-mae_4xb4-40k_voc12aug-512x512.py'

pretrained = 'work_dirs/transfer/data2vec2_vit-base-p16_in1k/' \
    'backbone_mmpretrain.pth'

model = dict(
    data_preprocessor=dict(test_cfg=dict(size_divisor=16)),
    backbone=dict(
        _delete_=True,
        type='mmssl.D2V2ViT',
        arch='base',
        img_size={{_base_.crop_size}},
        patch_size=16,
        out_indices=(3, 5, 7, 11),
        out_type='featmap',
        drop_path_rate=0.1,
        init_cfg=dict(
            type='Pretrained', prefix='backbone.', checkpoint=pretrained)))
