# ALBERT pretraining (MLM with n-gram masking + sentence-order prediction)
# on the embedded text: the docstrings of the Python standard library (a few
# thousand documents of real English prose), a 2000-piece SentencePiece
# unigram model trained on its training split, both made on first use in
# data/embedded_text. A tiny ALBERT: E = 32, H = 64, 4 layers sharing one
# set of weights, 2 heads, FFN 256, sequences of 128 tokens (0.12M
# parameters with the embeddings; about 6 minutes on one CPU core).
#   python tools/train.py configs/albert/albert_tiny_1xb32-lamb-20e_embedded-text.py
# Baselines: bert_tiny_1xb32-lamb-20e_embedded-text.py (no sharing, E = H),
# albert_tiny-nosop_1xb32-lamb-20e_embedded-text.py (MLM only).
_base_ = ['../_base_/default_runtime.py']

vocab_size = 2000
max_seq_length = 128
max_epochs = 20
data_root = 'data/embedded_text'

train_pipeline = [
    dict(
        type='mmssl.NgramMLMMask',
        mask_prob=0.15,
        max_ngram=3,
        max_predictions=20,
        vocab_size=vocab_size),
    dict(type='mmssl.PackTextInputs'),
]
# fixed masks for validation: the same positions every epoch
val_pipeline = [
    dict(
        type='mmssl.NgramMLMMask',
        mask_prob=0.15,
        max_ngram=3,
        max_predictions=20,
        vocab_size=vocab_size,
        seed=0),
    dict(type='mmssl.PackTextInputs'),
]
text_data = dict(
    type='mmssl.EmbeddedTextPretrainDataset',
    data_root=data_root,
    vocab_size=vocab_size,
    max_seq_length=max_seq_length,
    short_seq_prob=0.1,
    # a few docstring sentences are longer than a segment: cut them
    truncate_long_sentences=True,
    seed=0)
train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(text_data, split='train', pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(text_data, split='val', pipeline=val_pipeline))
val_evaluator = dict(type='mmssl.MLMSOPMetric')
test_dataloader = val_dataloader
test_evaluator = val_evaluator

model = dict(
    type='mmssl.AlbertPretrainer',
    backbone=dict(
        type='mmssl.AlbertEncoder',
        arch='base',
        vocab_size=vocab_size,
        embedding_size=32,
        hidden_size=64,
        num_layers=4,
        num_heads=2,
        ffn_dim=256,
        max_position=max_seq_length,
        share='all'),
    mlm_head=dict(type='mmssl.AlbertMLMHead'),
    sop_head=dict(type='mmssl.SentenceOrderHead'),
    data_preprocessor=dict(type='mmssl.TextDataPreprocessor', pad_token_id=0))

# LAMB as ALBERT (mmpretrain's), no decay on LayerNorm and biases; the
# learning rate of a 32-sequence batch (the paper's 0.00176 is for 4096)
optim_wrapper = dict(
    optimizer=dict(
        type='Lamb', lr=2e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.01),
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.),
    clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.01,
        by_epoch=True,
        begin=0,
        end=1,
        convert_to_iter_based=True),
    dict(
        type='PolyLR',
        power=1.0,
        eta_min=0.,
        by_epoch=True,
        begin=1,
        end=max_epochs,
        convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=5)
val_cfg = dict()
test_cfg = dict()

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', interval=5, max_keep_ckpts=2))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0, diff_rank_seed=True)
