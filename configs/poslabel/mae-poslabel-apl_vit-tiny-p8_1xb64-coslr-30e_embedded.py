# MAE + absolute positional label on the embedded shapes: the tiny MAE of
# configs/mae (ViT 192-d, 6 blocks, patch 8, 75 % masking, same schedule and
# seed) with an APL head on the encoder's 16 visible tokens; each predicts
# the grid cell (of 64) its patch came from. L = L_MAE + 0.5 * CE_pos.
#   python tools/train.py configs/poslabel/mae-poslabel-apl_vit-tiny-p8_1xb64-coslr-30e_embedded.py
# The encoder keeps MAE's sin-cos position embedding; the harder setting
# without it (visible tokens carry no position, as in DropPos):
#   --cfg-options model.backbone.use_pos_embed=False
_base_ = ['../mae/mae_vit-tiny-p8_1xb64-coslr-30e_embedded.py']

model = dict(
    type='mmssl.MAEPosLabel',
    backbone=dict(use_pos_embed=True),
    pos_head=dict(
        type='mmssl.AbsPosLabelHead',
        in_channels=192,
        grid_size=8,
        mlp_dims=(192, 96),
        loss_weight=0.5))
