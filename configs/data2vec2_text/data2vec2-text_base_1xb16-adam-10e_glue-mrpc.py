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
# checkpoint (the student encoder, keys under 'backbone.'). The GLUE data,
# metric, head and runtime are ALBERT's GLUE config's:
#   python tools/train.py configs/data2vec2_text/data2vec2-text_base_1xb16-adam-10e_glue-mrpc.py
_base_ = ['../albert/albert_base_1xb32-adamw-3e_glue-mrpc.py']

max_length = 512
max_epochs = 10
vocab_size = 30000
pretrained = ('work_dirs/data2vec2-text_base_16xb4-adam-1000kiter_bookwiki/'
              'iter_1000000.pth')

glue_data = dict(max_length=max_length)
train_dataloader = dict(batch_size=16, dataset=dict(max_length=max_length))
val_dataloader = dict(dataset=dict(max_length=max_length))
test_dataloader = val_dataloader

model = dict(
    backbone=dict(
        _delete_=True,
        type='mmssl.D2V2TextEncoder',
        arch='base',
        vocab_size=vocab_size,
        max_position=512,
        drop_rate=0.1,
        attn_drop_rate=0.1,
        with_pooler=True,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')))

optim_wrapper = dict(
    _delete_=True,
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
train_cfg = dict(max_epochs=max_epochs)
