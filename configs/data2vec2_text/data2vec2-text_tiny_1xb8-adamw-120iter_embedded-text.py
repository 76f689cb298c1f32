# data2vec 2.0 text pretraining of a tiny encoder on the embedded text (the
# standard-library docstring corpus and its 2000-piece SentencePiece model,
# made on first use in data/embedded_text): 4 post-LN blocks, 64 wide, 2
# heads, FFN 256, blocks of 128 tokens (sample_break_mode none, 1911
# training blocks). The base recipe scaled down: 8 masks per sequence
# removing 48 % of the tokens, a 5-layer 1-D conv decoder (k 9, 64 wide, no
# residual, 2-layer projection), targets = the instance-normalised FFN
# outputs of all 4 teacher blocks averaged (no final LayerNorm), L2 with
# scale 1, no CLS term; Adam (decoupled weight decay 0.01) betas (0.9,
# 0.98), eps 1e-6, clipping 1, dropout 0.1. For a run of 120 updates: lr
# 1e-3 with 10 % warm-up then cosine, and a faster teacher (tau 0.99 ->
# 0.999 over the run). About 2 minutes on one CPU thread.
#   python tools/train.py configs/data2vec2_text/data2vec2-text_tiny_1xb8-adamw-120iter_embedded-text.py
# Its MLM baseline (the same encoder, data and optimizer):
# mlm_d2v2-text-tiny_1xb32-adamw-240iter_embedded-text.py; fine-tuning on the
# embedded sentence-pair task: data2vec2-text_tiny_1xb32-adamw-1e_embedded-pairs.py
_base_ = ['../_base_/default_runtime.py']

vocab_size = 2000
tokens_per_sample = 128
max_iters = 120
warmup_iters = 12
save_interval = 40
embed_dims = 64
arch = dict(
    embed_dims=embed_dims, num_layers=4, num_heads=2, feedforward_channels=256)

block_data = dict(
    type='mmssl.EmbeddedTextBlockDataset',
    data_root='data/embedded_text',
    vocab_size=vocab_size,
    tokens_per_sample=tokens_per_sample,
    sample_break_mode='none')
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        block_data,
        split='train',
        pipeline=[dict(type='PackInputs', input_key='input_ids')]))

model = dict(
    type='mmssl.Data2VecV2',
    data_preprocessor=dict(type='BaseDataPreprocessor'),
    backbone=dict(
        type='mmssl.D2V2TextEncoder',
        arch=arch,
        vocab_size=vocab_size,
        max_position=tokens_per_sample,
        drop_rate=0.1,
        attn_drop_rate=0.1,
        with_pooler=False),
    mask_generator=dict(
        type='mmssl.RandomTokenMasker', mask_ratio=0.48, num_masks=8),
    neck=dict(
        type='mmssl.D2V2ConvDecoder1d',
        in_channels=embed_dims,
        embed_dims=embed_dims,
        num_layers=5,
        kernel_size=9,
        groups=1,
        residual=False,
        projection_layers=2,
        projection_ratio=2.,
        input_dropout=0.1),
    head=dict(
        type='mmssl.D2V2Head',
        top_k=4,
        instance_norm=True,
        layer_norm=False,
        cls_loss_weight=0.,
        loss=dict(type='mmssl.D2V2RegressionLoss', scale=1.)),
    ema=dict(momentum=1e-2, end_momentum=1e-3, anneal_iters=max_iters))

optim_wrapper = dict(
    optimizer=dict(
        type='AdamW', lr=1e-3, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01),
    paramwise_cfg=dict(
        bias_decay_mult=0., norm_decay_mult=0., flat_decay_mult=0.),
    clip_grad=dict(max_norm=1.0))
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
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)

default_hooks = dict(
    # every iteration's time is logged: the time-to-accuracy study sums it
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(
        type='CheckpointHook', by_epoch=False, interval=save_interval))
custom_hooks = [dict(type='mmssl.TeacherUpdateHook')]
log_processor = dict(by_epoch=False)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0, diff_rank_seed=True)
