# The tiny MAE of configs/mae without a position embedding in the encoder
# (the decoder keeps its own): the baseline of
# mae-poslabel-apl-nopos_vit-tiny-p8_1xb64-coslr-30e_embedded.py.
#   python tools/train.py configs/poslabel/mae-nopos_vit-tiny-p8_1xb64-coslr-30e_embedded.py
_base_ = ['../mae/mae_vit-tiny-p8_1xb64-coslr-30e_embedded.py']

model = dict(backbone=dict(use_pos_embed=False))
