# The baseline of poslabel-rpl_swin-tiny-w4_1xb64-coslr-20e_embedded.py: the
# same tiny Swin, data, schedule and seed as a plain Swin (relative position
# bias on, no positional head), the comparison the paper reports.
#   python tools/train.py configs/poslabel/swin-tiny-w4_1xb64-coslr-20e_embedded.py
_base_ = ['./poslabel-rpl_swin-tiny-w4_1xb64-coslr-20e_embedded.py']

model = dict(backbone=dict(use_rel_pos_bias=True), pos_head=None)
