# Fine-tuning the data2vec 2.0 text encoder on a GLUE task (MRPC here:
# paraphrase, accuracy and F1; the other seven configs change the task, the
# files, the classes and the metric), as the reference's
# examples/data2vec/config/v2/text_finetuning/*.yaml: Adam betas (0.9, 0.98),
# eps 1e-6, weight decay 0.1, lr 2e-5, batch 16, 10 epochs, 6 % linear
# warm-up then linear decay, no gradient clipping; the [CLS] (<s>) token's
# tanh pooler and a linear head (RoBERTa's classification head), dropout 0.1.
# GLUE TSVs in data/glue/<TASK>/ (not downloaded), tokenised with the
# pretraining's SentencePiece model as [CLS] a [SEP] b [SEP], at most 512
# tokens (the encoder's positions). The backbone starts from the pretraining
# checkpoint (the student encoder, keys under 'backbone.'):
#   python tools/train.py configs/data2vec2_text/data2vec2-text_base_1xb16-adam-10e_glue-mrpc.py
_base_ = ['../_base_/default_runtime.py']

max_length = 512
max_epochs = 10
vocab_size = 30000
tokenizer = 'data/bookwiki/spm30k.model'
pretrained = ('work_dirs/data2vec2-text_base_16xb4-adam-1000kiter_bookwiki/'
              'iter_1000000.pth')

glue_data = dict(
    type='mmssl.GLUEDataset',
    task='mrpc',
    tokenizer=tokenizer,
    max_length=max_length,
    pipeline=[dict(type='mmssl.PackTextInputs')])
train_dataloader = dict(
    batch_size=16,
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
        type='mmssl.D2V2TextEncoder',
        arch='base',
        vocab_size=vocab_size,
        max_position=512,
        drop_rate=0.1,
        attn_drop_rate=0.1,
        with_pooler=True,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    head=dict(type='mmssl.TextClsHead', num_classes=2, dropout=0.1),
    data_preprocessor=dict(type='mmssl.TextDataPreprocessor', pad_token_id=0))

optim_wrapper = dict(
    optimizer=dict(
        type='AdamW', lr=2e-5, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.1),
    paramwise_cfg=dict(norm_decay_mult=0., bias_decay_mult=0.))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=True,
        begin=0,
        end=0.06 * max_epochs,
        convert_to_iter_based=True),
    dict(
        type='PolyLR',
        power=1.0,
        eta_min=0.,
        by_epoch=True,
        begin=0.06 * max_epochs,
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
