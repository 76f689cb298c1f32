# MAE + absolute positional label without a position embedding in the
# encoder: the visible tokens carry no position (as in DropPos), so the APL
# head has to infer each token's grid cell from its content; the decoder
# keeps its own embedding. Otherwise the config it inherits.
#   python tools/train.py configs/poslabel/mae-poslabel-apl-nopos_vit-tiny-p8_1xb64-coslr-30e_embedded.py
_base_ = ['./mae-poslabel-apl_vit-tiny-p8_1xb64-coslr-30e_embedded.py']

model = dict(backbone=dict(use_pos_embed=False))
