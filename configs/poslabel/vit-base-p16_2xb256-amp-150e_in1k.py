# The baseline of poslabel-apl_vit-base-p16_2xb256-amp-150e_in1k.py: the same
# ViT-B/16 (no CLS token, global average pooling, learned position
# embedding), data and schedule without the positional head; the paper
# reports 77.91 top-1 for it. Train with
#   bash tools/dist_train.sh configs/poslabel/vit-base-p16_2xb256-amp-150e_in1k.py 2
_base_ = ['./poslabel-apl_vit-base-p16_2xb256-amp-150e_in1k.py']

model = dict(pos_head=None)
