# ALBERT-xxlarge: L 12, H 4096, 64 heads, FFN 16384 (222.6M parameters; the paper's table says 235M), E 128, all layers shared; otherwise
# albert_base_64xb64-lamb-125k_bookwiki.py (data, LAMB, schedule).
#   bash tools/dist_train.sh configs/albert/albert_xxlarge_64xb64-lamb-125k_bookwiki.py 64
_base_ = ['./albert_base_64xb64-lamb-125k_bookwiki.py']

model = dict(backbone=dict(arch='xxlarge'))
