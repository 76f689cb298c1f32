# The embedded shapes data (data/embedded, made on first use) at 32 px with
# generated captions, for CLIP pretraining; zero-shot validation on the
# labelled val split.
data_root = 'data/embedded'

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=32,
        crop_ratio_range=(0.6, 1.0),
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs', algorithm_keys=['caption'])
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=32, backend='pillow', interpolation='bicubic'),
    dict(type='PackInputs')
]

train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='mmssl.EmbeddedCaptionDataset',
        data_root=data_root,
        split='train',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=250,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='mmssl.EmbeddedClsDataset',
        data_root=data_root,
        split='val',
        pipeline=test_pipeline))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator
