# The MLM baseline of data2vec2-text_tiny_1xb8-adamw-120iter_embedded-text.py:
# the SAME encoder (mmssl.D2V2TextEncoder, 4 blocks, 64 wide), data (blocks
# of 128 tokens of the embedded corpus), optimizer, schedule shape and
# clipping, pretrained with masked language modelling as RoBERTa (15 % of
# the tokens, 80 / 10 / 10 [MASK] / random / kept, a new draw every epoch;
# an LM head tied to the token embedding, mmssl.AlbertPretrainer without
# sentence order). 32 sequences a step and 240 steps: about the same
# wall-clock time on one CPU thread as the data2vec 2.0 run (each of its
# steps encodes 8 x 8 masked copies and runs the teacher and the decoder).
#   python tools/train.py configs/data2vec2_text/mlm_d2v2-text-tiny_1xb32-adamw-240iter_embedded-text.py
_base_ = ['./data2vec2-text_tiny_1xb8-adamw-120iter_embedded-text.py']

vocab_size = 2000
max_iters = 240
warmup_iters = 24

train_dataloader = dict(
    batch_size=32,
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(pipeline=[
        # RoBERTa's token-level masking: single tokens (n-grams of 1)
        dict(
            type='mmssl.NgramMLMMask',
            mask_prob=0.15,
            max_ngram=1,
            max_predictions=20,
            vocab_size=vocab_size),
        dict(type='mmssl.PackTextInputs'),
    ]))

model = dict(
    _delete_=True,
    type='mmssl.AlbertPretrainer',
    backbone={{_base_.model.backbone}},
    mlm_head=dict(type='mmssl.AlbertMLMHead', act='gelu'),
    sop_head=None,
    data_preprocessor=dict(type='mmssl.TextDataPreprocessor', pad_token_id=0))

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=False,
        begin=0,
        end=warmup_iters),
    dict(
        type='CosineAnnealingLR',
        T_max=max_iters - warmup_iters,
        eta_min=0.,
        by_epoch=False,
        begin=warmup_iters,
        end=max_iters),
]
train_cfg = dict(max_iters=max_iters)
default_hooks = dict(checkpoint=dict(interval=80))
custom_hooks = []
