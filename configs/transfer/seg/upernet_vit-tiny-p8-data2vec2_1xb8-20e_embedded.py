# UperNet on the tiny post-LN ViT of data2vec 2.0 (192-d, 6 blocks, patch 8)
# of configs/data2vec2/data2vec2_vit-tiny-p8_1xb64-coslr-30e_embedded.py, with
# the recipe of upernet_vit-tiny-p8-mae_1xb8-20e_embedded.py (same pyramid,
# head, layer-wise lr decay 0.65 and schedule). data2vec 2.0's blocks put the
# LayerNorm after the residual add, so the backbone is mmssl.D2V2ViT, which
# loads the `--to mmpretrain` export of
#   python tools/analysis_tools/transfer_pipeline.py \
#       --method data2vec2 --task seg
_base_ = './upernet_vit-tiny-p8-mae_1xb8-20e_embedded.py'

pretrained = 'work_dirs/transfer/embedded/data2vec2/backbone_mmpretrain.pth'

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmssl.D2V2ViT',
        arch=dict(
            embed_dims=192,
            num_layers=6,
            num_heads=3,
            feedforward_channels=768),
        img_size=64,
        patch_size=8,
        out_indices=(1, 2, 3, 5),
        out_type='featmap',
        drop_path_rate=0.1,
        init_cfg=dict(
            type='Pretrained', prefix='backbone.', checkpoint=pretrained)))
