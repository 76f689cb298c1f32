# The embedded shapes data set (made by mmssl on first use in data/embedded),
# unlabelled, 64 px, for MAE-style pretraining.
data_root = 'data/embedded'

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=64,
        crop_ratio_range=(0.35, 1.0),
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs')
]

train_dataloader = dict(
    batch_size=64,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='mmssl.EmbeddedClsDataset',
        data_root=data_root,
        split='train',
        with_label=False,
        pipeline=train_pipeline))

# Frozen-feature evaluation (kNN / linear probe / finetune) on the labelled
# classification split, read by tools/analysis_tools/eval_frozen.py and
# mmssl.FrozenEvalHook.
eval_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
frozen_eval = dict(
    train_dataloader=dict(
        batch_size=128,
        num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=False),
        collate_fn=dict(type='default_collate'),
        dataset=dict(
            type='mmssl.EmbeddedClsDataset',
            data_root=data_root,
            split='train',
            pipeline=eval_pipeline)),
    val_dataloader=dict(
        batch_size=128,
        num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=False),
        collate_fn=dict(type='default_collate'),
        dataset=dict(
            type='mmssl.EmbeddedClsDataset',
            data_root=data_root,
            split='val',
            pipeline=eval_pipeline)))
