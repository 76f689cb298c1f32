# UperNet on a ViT-B/16 pretrained by MAE, the MAE / BEiT segmentation
# recipe (mmseg's upernet_mae model): blocks 4, 6, 8, 12 turned into a
# stride 4-8-16-32 pyramid by Feature2Pyramid, UPerHead (768 channels) and
# an auxiliary FCN head on the third level. The backbone is mmpretrain's
# VisionTransformer, which loads the `--to mmpretrain` export of an
# mmssl.MAEViT (the same pre-LN ViT) with no missing key; its position
# embedding is resized to the crop on loading.
_base_ = 'mmseg::_base_/models/upernet_mae.py'

model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='mmpretrain.VisionTransformer',
        arch='base',
        img_size=512,
        patch_size=16,
        out_indices=(3, 5, 7, 11),
        out_type='featmap',
        drop_path_rate=0.1,
        final_norm=False,
        init_cfg=dict(
            type='Pretrained',
            prefix='backbone.',
            checkpoint='work_dirs/transfer/mae_vit-base-p16_in1k/'
            'backbone_mmpretrain.pth')),
    neck=dict(embed_dim=768, rescales=[4, 2, 1, 0.5]),
    decode_head=dict(in_channels=[768, 768, 768, 768], channels=768),
    auxiliary_head=dict(in_channels=768))
