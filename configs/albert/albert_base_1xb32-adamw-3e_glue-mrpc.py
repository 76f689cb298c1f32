# Fine-tuning ALBERT-base on a GLUE task (MRPC here: paraphrase, accuracy
# and F1; the other seven configs change the task, the files, the classes
# and the metric): the
# TSV files of the GLUE release in data/glue/<TASK>/ (not downloaded),
# tokenised with the pretraining's SentencePiece model, [CLS] a [SEP] b
# [SEP] truncated to 128 tokens; a linear head on the pooled [CLS] output;
# AdamW lr 2e-5, batch 32, 3 epochs, 10 % linear warm-up then linear decay
# (the usual BERT / ALBERT GLUE recipe; the spec's MNLI example uses lr
# 3e-5, batch 128, 10k steps).
# The backbone: an mmssl pretraining checkpoint, or a public ALBERT
# checkpoint converted once:
#   python tools/model_converters/albert_to_mmssl.py \
#       albert-base-v2/pytorch_model.bin checkpoints/albert-base-v2_mmssl.pth \
#       --config albert-base-v2/config.json
#   python tools/train.py configs/albert/albert_base_1xb32-adamw-3e_glue-mrpc.py
_base_ = ['../_base_/default_runtime.py']

max_length = 128
max_epochs = 3
vocab_size = 30000
tokenizer = 'data/bookwiki/spm30k.model'  # albert-base-v2: its spiece.model
pretrained = 'checkpoints/albert-base-v2_mmssl.pth'

glue_data = dict(
    type='mmssl.GLUEDataset',
    task='mrpc',
    tokenizer=tokenizer,
    max_length=max_length,
    pipeline=[dict(type='mmssl.PackTextInputs')])
train_dataloader = dict(
    batch_size=32,
    num_workers=2,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(glue_data, ann_file='data/glue/MRPC/train.tsv'))
val_dataloader = dict(
    batch_size=64,
    num_workers=2,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(glue_data, ann_file='data/glue/MRPC/dev.tsv'))
val_evaluator = dict(type='mmssl.GLUEMetric', scores=('accuracy', 'f1'))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

model = dict(
    type='mmssl.TextClassifier',
    backbone=dict(
        type='mmssl.AlbertEncoder',
        arch='base',
        vocab_size=vocab_size,
        dropout=0.1,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    head=dict(type='mmssl.TextClsHead', num_classes=2, dropout=0.1),
    data_preprocessor=dict(type='mmssl.TextDataPreprocessor', pad_token_id=0))

optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=2e-5, weight_decay=0.01, eps=1e-6),
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
    checkpoint=dict(
        type='CheckpointHook',
        interval=1,
        max_keep_ckpts=1,
        save_best='f1',
        rule='greater'))
randomness = dict(seed=0, diff_rank_seed=True)
