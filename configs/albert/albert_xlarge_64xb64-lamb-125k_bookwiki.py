# ALBERT-xlarge: L 24, H 2048, 16 heads, FFN 8192 (58.7M parameters), E 128, all layers shared; otherwise
# albert_base_64xb64-lamb-125k_bookwiki.py (data, LAMB, schedule).
#   bash tools/dist_train.sh configs/albert/albert_xlarge_64xb64-lamb-125k_bookwiki.py 64
_base_ = ['./albert_base_64xb64-lamb-125k_bookwiki.py']

model = dict(backbone=dict(arch='xlarge'))
