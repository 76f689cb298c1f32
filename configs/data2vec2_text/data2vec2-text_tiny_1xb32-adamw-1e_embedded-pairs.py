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
_base_ = ['../_base_/default_runtime.py']

vocab_size = 2000
max_length = 64
max_epochs = 1
pretrained = ('work_dirs/data2vec2-text_tiny_1xb8-adamw-120iter_embedded-text/'
              'iter_120.pth')

pair_data = dict(
    type='mmssl.EmbeddedPairTaskDataset',
    data_root='data/embedded_text',
    vocab_size=vocab_size,
    max_length=max_length,
    pipeline=[dict(type='mmssl.PackTextInputs')])
train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(pair_data, split='train'))
val_dataloader = dict(
    batch_size=64,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(pair_data, split='dev'))
val_evaluator = dict(type='mmssl.GLUEMetric', scores=('accuracy', 'f1'))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

model = dict(
    type='mmssl.TextClassifier',
    backbone=dict(
        type='mmssl.D2V2TextEncoder',
        arch=dict(
            embed_dims=64, num_layers=4, num_heads=2,
            feedforward_channels=256),
        vocab_size=vocab_size,
        max_position=128,
        drop_rate=0.1,
        attn_drop_rate=0.1,
        with_pooler=True,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    head=dict(type='mmssl.TextClsHead', num_classes=2, dropout=0.1),
    data_preprocessor=dict(type='mmssl.TextDataPreprocessor', pad_token_id=0))

optim_wrapper = dict(
    optimizer=dict(
        type='AdamW', lr=5e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01),
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.),
    clip_grad=dict(max_norm=1.0))
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
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=1))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0, diff_rank_seed=True)
