# Fine-tuning the tiny data2vec 2.0 text encoder on the embedded
# sentence-pair task (is sentence 2 the sentence right after sentence 1 in
# the same document? 5974 training / 734 dev pairs, balanced: majority class
# 50 %), a GLUE-format TSV read by mmssl.EmbeddedPairTaskDataset and scored
# with accuracy and F1: mmssl.TextClassifier, the [CLS] pooler and a linear
# head, AdamW lr 5e-4, batch 32, 1 epoch (187 steps), 10 % warm-up.
# The backbone starts from the pretraining checkpoint:
#   python tools/train.py configs/data2vec2_text/data2vec2-text_tiny_1xb8-adamw-120iter_embedded-text.py
#   python tools/train.py configs/data2vec2_text/data2vec2-text_tiny_1xb32-adamw-1e_embedded-pairs.py
# From the MLM baseline: --cfg-options model.backbone.init_cfg.checkpoint=
# work_dirs/mlm_d2v2-text-tiny_1xb32-adamw-240iter_embedded-text/iter_240.pth;
# from scratch: --cfg-options model.backbone.init_cfg=None
# The data, metric, head and runtime are ALBERT's pair-task config's.
_base_ = ['../albert/albert_tiny_1xb32-adamw-5e_embedded-pairs.py']

max_length = 64
max_epochs = 1
pretrained = ('work_dirs/data2vec2-text_tiny_1xb8-adamw-120iter_embedded-text/'
              'iter_120.pth')

pair_data = dict(max_length=max_length)
train_dataloader = dict(dataset=dict(max_length=max_length))
val_dataloader = dict(dataset=dict(max_length=max_length))
test_dataloader = val_dataloader

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmssl.D2V2TextEncoder',
        arch=dict(
            embed_dims=64, num_layers=4, num_heads=2,
            feedforward_channels=256),
        vocab_size={{_base_.vocab_size}},
        max_position=128,
        drop_rate=0.1,
        attn_drop_rate=0.1,
        with_pooler=True,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')))

optim_wrapper = dict(
    optimizer=dict(
        type='AdamW', lr=5e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=True,
        begin=0,
        end=0.1 * max_epochs,
        convert_to_iter_based=True),
    dict(
        type='PolyLR',
        power=1.0,
        eta_min=0.,
        by_epoch=True,
        begin=0.1 * max_epochs,
        end=max_epochs,
        convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs)
default_hooks = dict(
    checkpoint=dict(
        _delete_=True, type='CheckpointHook', interval=1, max_keep_ckpts=1))
