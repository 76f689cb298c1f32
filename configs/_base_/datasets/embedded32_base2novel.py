# Base-to-novel protocol on the embedded shapes at 32 px: the first 5 classes
# (circle, ellipse, semicircle, triangle, square) are base, the other 4
# (pentagon, hexagon, star, cross) novel. Training: 16 shots of each base
# class (seed 1); test: every val image, scored against all 9 names.
data_root = 'data/embedded'
num_shots = 16
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=32,
        crop_ratio_range=(0.6, 1.0),
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs')
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
        type='mmssl.FewShotDataset',
        dataset=dict(
            type='mmssl.EmbeddedClsDataset',
            data_root=data_root,
            split='train'),
        num_shots=num_shots,
        seed=1,
        subsample='base',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=250,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='mmssl.FewShotDataset',
        dataset=dict(
            type='mmssl.EmbeddedClsDataset', data_root=data_root, split='val'),
        subsample='all',
        pipeline=test_pipeline))
val_evaluator = dict(type='mmssl.BaseNovelAccuracy')
test_dataloader = val_dataloader
test_evaluator = val_evaluator
