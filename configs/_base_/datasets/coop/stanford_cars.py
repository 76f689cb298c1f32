# stanford_cars: base-to-novel protocol (train: few shots of the base half of the
# classes; test: every test image scored against all class names).
# CoOp's split file split_zhou_StanfordCars.json (CoOp's DATASETS.md) under data/stanford_cars.
data_root = 'data/stanford_cars'
num_shots = 16
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=224,
        crop_ratio_range=(0.08, 1.0),
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='ResizeEdge',
        scale=224,
        edge='short',
        backend='pillow',
        interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs')
]
train_dataloader = dict(
    batch_size=32,
    num_workers=4,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='mmssl.FewShotDataset',
        dataset=dict(
            type='mmssl.CoOpSplitDataset',
            data_root=data_root,
            split_file='split_zhou_StanfordCars.json',
            split='train',
            img_dir=''),
        num_shots=num_shots,
        seed=1,
        subsample='base',
        pipeline=train_pipeline))
test_dataloader = dict(
    batch_size=100,
    num_workers=4,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='mmssl.FewShotDataset',
        dataset=dict(
            type='mmssl.CoOpSplitDataset',
            data_root=data_root,
            split_file='split_zhou_StanfordCars.json',
            split='test',
            img_dir=''),
        subsample='all',
        pipeline=test_pipeline))
test_evaluator = dict(type='mmssl.BaseNovelAccuracy')
val_dataloader = test_dataloader
val_evaluator = test_evaluator
