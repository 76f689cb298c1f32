# Fine-tuning the tiny ALBERT on the embedded sentence-pair task: is
# sentence2 the sentence right after sentence1 in the same document (both
# sentences come from one document, so only coherence tells; the classes
# are balanced, majority class 50 %)? A GLUE-format TSV read by
# mmssl.GLUEDataset, scored with accuracy and F1.
# The backbone starts from the pretraining checkpoint:
#   python tools/train.py configs/albert/albert_tiny_1xb32-lamb-20e_embedded-text.py
#   python tools/train.py configs/albert/albert_tiny_1xb32-adamw-5e_embedded-pairs.py
# From scratch: --cfg-options model.backbone.init_cfg=None
_base_ = ['../_base_/default_runtime.py']

vocab_size = 2000
max_length = 128
max_epochs = 5
pretrained = 'work_dirs/albert_tiny_1xb32-lamb-20e_embedded-text/epoch_20.pth'

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
        type='mmssl.AlbertEncoder',
        arch='base',
        vocab_size=vocab_size,
        embedding_size=32,
        hidden_size=64,
        num_layers=4,
        num_heads=2,
        ffn_dim=256,
        max_position=max_length,
        share='all',
        dropout=0.1,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    head=dict(type='mmssl.TextClsHead', num_classes=2, dropout=0.1),
    data_preprocessor=dict(type='mmssl.TextDataPreprocessor', pad_token_id=0))

optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.01),
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
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(
        type='CheckpointHook',
        interval=1,
        max_keep_ckpts=1,
        save_best='accuracy',
        rule='greater'))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0, diff_rank_seed=True)
