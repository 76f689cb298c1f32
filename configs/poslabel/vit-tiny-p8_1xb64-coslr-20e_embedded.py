# The baseline of poslabel-apl_vit-tiny-p8_1xb64-coslr-20e_embedded.py: the
# same ViT-tiny, data, schedule and seed without the positional head.
#   python tools/train.py configs/poslabel/vit-tiny-p8_1xb64-coslr-20e_embedded.py
_base_ = ['./poslabel-apl_vit-tiny-p8_1xb64-coslr-20e_embedded.py']

model = dict(pos_head=None)
