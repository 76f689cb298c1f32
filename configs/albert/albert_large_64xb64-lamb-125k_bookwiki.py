# ALBERT-large: L 24, H 1024, 16 heads, FFN 4096 (17.7M parameters), E 128, all layers shared; otherwise
# albert_base_64xb64-lamb-125k_bookwiki.py (data, LAMB, schedule).
#   bash tools/dist_train.sh configs/albert/albert_large_64xb64-lamb-125k_bookwiki.py 64
_base_ = ['./albert_base_64xb64-lamb-125k_bookwiki.py']

model = dict(backbone=dict(arch='large'))
