# The BERT-base baseline of albert_base_64xb64-lamb-125k_bookwiki.py: no
# factorised embedding (E = H = 768), no cross-layer sharing (108M
# parameters), the same data, MLM + SOP, LAMB and schedule.
#   bash tools/dist_train.sh configs/albert/bert_base_64xb64-lamb-125k_bookwiki.py 64
_base_ = ['./albert_base_64xb64-lamb-125k_bookwiki.py']

model = dict(backbone=dict(arch='bert-base'))
