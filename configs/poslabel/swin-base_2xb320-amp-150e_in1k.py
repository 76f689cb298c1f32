# The baseline of poslabel-rpl_swin-base_2xb320-amp-150e_in1k.py: the same
# Swin-B, data and schedule as a plain Swin (relative position bias on, no
# positional head); the paper reports 83.35 top-1 for it. Train with
#   bash tools/dist_train.sh configs/poslabel/swin-base_2xb320-amp-150e_in1k.py 2
_base_ = ['./poslabel-rpl_swin-base_2xb320-amp-150e_in1k.py']

model = dict(backbone=dict(use_rel_pos_bias=True), pos_head=None)
