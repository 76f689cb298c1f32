# The unshared BERT baseline of albert_tiny_1xb32-lamb-20e_embedded-text.py:
# the same H = 64, 4 layers, heads, FFN, data, MLM + SOP, schedule and
# seed, with no factorisation (E = H, no projection) and no cross-layer
# sharing (4 separate sets of layer weights).
#   python tools/train.py configs/albert/bert_tiny_1xb32-lamb-20e_embedded-text.py
_base_ = ['./albert_tiny_1xb32-lamb-20e_embedded-text.py']

model = dict(backbone=dict(embedding_size=64, share='none'))
