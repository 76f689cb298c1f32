# albert_tiny_1xb32-lamb-20e_embedded-text.py without sentence-order
# prediction (MLM only): the SOP ablation. The data still carry the SOP
# labels; the metric reports the MLM accuracy.
#   python tools/train.py configs/albert/albert_tiny-nosop_1xb32-lamb-20e_embedded-text.py
_base_ = ['./albert_tiny_1xb32-lamb-20e_embedded-text.py']

model = dict(sop_head=None)
