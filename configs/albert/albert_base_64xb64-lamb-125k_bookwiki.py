# ALBERT-base (L 12, H 768, E 128, 12 heads, FFN 3072, all layers shared;
# 11.7M parameters) pretrained as the paper: MLM with n-gram masking + SOP,
# sequences of 512, LAMB lr 0.00176, batch 4096 (64 GPUs x 64), 125k steps,
# 3125 warm-up steps then linear decay to 0.
# Data (local, not downloaded): a plain-text corpus with one sentence per
# line and a blank line between documents (BookCorpus + English Wikipedia in
# the paper) in data/bookwiki/{train,val}.txt, and a 30k-piece SentencePiece
# model trained on it:
#   python tools/misc/train_tokenizer.py data/bookwiki/train.txt \
#       --out-prefix data/bookwiki/spm30k --vocab-size 30000
#   bash tools/dist_train.sh configs/albert/albert_base_64xb64-lamb-125k_bookwiki.py 64
_base_ = ['../_base_/default_runtime.py']

vocab_size = 30000
max_seq_length = 512
max_iters = 125000
warmup_iters = 3125
data_root = 'data/bookwiki'
tokenizer = data_root + '/spm30k.model'

mask = dict(
    type='mmssl.NgramMLMMask',
    mask_prob=0.15,
    max_ngram=3,
    max_predictions=20,
    vocab_size=vocab_size)
text_data = dict(
    type='mmssl.AlbertPretrainDataset',
    tokenizer=tokenizer,
    max_seq_length=max_seq_length,
    short_seq_prob=0.1,
    truncate_long_sentences=True,
    seed=0)
train_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        text_data,
        ann_file=data_root + '/train.txt',
        pipeline=[mask, dict(type='mmssl.PackTextInputs')]))
val_dataloader = dict(
    batch_size=64,
    num_workers=4,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        text_data,
        ann_file=data_root + '/val.txt',
        pipeline=[dict(mask, seed=0),
                  dict(type='mmssl.PackTextInputs')]))
val_evaluator = dict(type='mmssl.MLMSOPMetric')
test_dataloader = val_dataloader
test_evaluator = val_evaluator

model = dict(
    type='mmssl.AlbertPretrainer',
    backbone=dict(
        type='mmssl.AlbertEncoder',
        arch='base',
        vocab_size=vocab_size,
        max_position=max_seq_length),  # truncated normal init, std 0.02
    mlm_head=dict(type='mmssl.AlbertMLMHead'),
    sop_head=dict(type='mmssl.SentenceOrderHead'),
    data_preprocessor=dict(type='mmssl.TextDataPreprocessor', pad_token_id=0))

optim_wrapper = dict(
    optimizer=dict(
        type='Lamb',
        lr=0.00176,
        betas=(0.9, 0.999),
        eps=1e-6,
        weight_decay=0.01),
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=False,
        begin=0,
        end=warmup_iters),
    dict(
        type='PolyLR',
        power=1.0,
        eta_min=0.,
        by_epoch=False,
        begin=warmup_iters,
        end=max_iters),
]
train_cfg = dict(by_epoch=False, max_iters=max_iters, val_interval=5000)
val_cfg = dict()
test_cfg = dict()
# LAMB's learning rate is for the whole 4096 batch
auto_scale_lr = dict(base_batch_size=4096)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=100),
    checkpoint=dict(
        type='CheckpointHook', by_epoch=False, interval=5000,
        max_keep_ckpts=3))
log_processor = dict(by_epoch=False)
randomness = dict(seed=0, diff_rank_seed=True)
