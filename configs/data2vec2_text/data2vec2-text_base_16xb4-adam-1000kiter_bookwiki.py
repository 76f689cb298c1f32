# data2vec 2.0 text pretraining, the reference's base recipe
# (fairseq examples/data2vec/config/v2/base_text_only_task.yaml): a 12-block,
# 768-wide post-LN encoder over token + learned position embeddings, blocks
# of 512 tokens (sample_break_mode none), 8 masks per sequence removing 48 %
# of the tokens each, a 5-layer 1-D conv decoder, targets = the average of
# the instance-normalised FFN outputs of all 12 teacher blocks (no final
# LayerNorm), L2 loss with scale 1 and no CLS term; the EMA teacher covers
# the blocks only and takes the student's embedding; Adam (decoupled weight
# decay) lr 2e-4, 4000 warm-up updates then cosine, 1M updates of 4
# sequences on each of 16 GPUs, gradient clipping 1.
# Data (local, not downloaded): a plain-text corpus with one sentence per
# line and a blank line between documents in data/bookwiki/{train,val}.txt
# and a SentencePiece model trained on it (ids: <pad> 0, [CLS] 2 starts a
# block, [SEP] 3 ends a sentence):
#   python tools/misc/train_tokenizer.py data/bookwiki/train.txt \
#       --out-prefix data/bookwiki/spm30k --vocab-size 30000
#   bash tools/dist_train.sh configs/data2vec2_text/data2vec2-text_base_16xb4-adam-1000kiter_bookwiki.py 16
_base_ = ['../_base_/default_runtime.py']

vocab_size = 30000
tokens_per_sample = 512
max_iters = 1000000
warmup_iters = 4000
data_root = 'data/bookwiki'
embed_dims = 768

train_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='mmssl.TextBlockDataset',
        ann_file=data_root + '/train.txt',
        tokenizer=data_root + '/spm30k.model',
        tokens_per_sample=tokens_per_sample,
        sample_break_mode='none',
        # the batch is a (B, 512) id tensor; the masks come from the model
        pipeline=[dict(type='PackInputs', input_key='input_ids')]))

model = dict(
    type='mmssl.Data2VecV2',
    # packed blocks need no padding: the ids go to the model as they are
    data_preprocessor=dict(type='BaseDataPreprocessor'),
    backbone=dict(
        type='mmssl.D2V2TextEncoder',
        arch='base',
        vocab_size=vocab_size,
        max_position=tokens_per_sample,
        pad_token_id=0,
        drop_rate=0.1,
        attn_drop_rate=0.1,
        ffn_drop_rate=0.,
        norm_eps=1e-5,
        with_pooler=False),
    mask_generator=dict(
        type='mmssl.RandomTokenMasker', mask_ratio=0.48, num_masks=8),
    neck=dict(
        type='mmssl.D2V2ConvDecoder1d',
        in_channels=embed_dims,
        embed_dims=768,
        num_layers=5,
        kernel_size=9,
        groups=1,
        residual=False,
        projection_layers=2,
        projection_ratio=2.,
        input_dropout=0.1,
        noise_std=0.01),
    head=dict(
        type='mmssl.D2V2Head',
        top_k=12,
        instance_norm=True,
        layer_norm=False,
        cls_loss_weight=0.,
        loss=dict(type='mmssl.D2V2RegressionLoss', scale=1.)),
    # mmengine momentum = 1 - tau: tau 0.9999 -> 0.99999 over 100k updates
    ema=dict(momentum=1e-4, end_momentum=1e-5, anneal_iters=100000))

optim_wrapper = dict(
    type='AmpOptimWrapper',
    optimizer=dict(
        type='AdamW', lr=2e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01),
    # as the reference: no decay on biases and other 1-D parameters
    paramwise_cfg=dict(
        bias_decay_mult=0., norm_decay_mult=0., flat_decay_mult=0.),
    clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-4,
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
    logger=dict(type='LoggerHook', interval=200),
    checkpoint=dict(
        type='CheckpointHook',
        by_epoch=False,
        interval=50000,
        max_keep_ckpts=1))
# the EMA teacher moves after every optimizer update
# fairseq's min_target_var / min_pred_var of the text recipe (std values)
custom_hooks = [
    dict(type='mmssl.TeacherUpdateHook'),
    dict(
        type='mmssl.CollapseGuardHook',
        min_target_std=0.1,
        min_pred_std=0.01,
        after_iters=5000)
]
log_processor = dict(by_epoch=False)
randomness = dict(seed=0, diff_rank_seed=True)
