# The embedded shapes data set drawn at 224 px (made by mmssl on first use in
# data/embedded_224), unlabelled, for pretraining ViT-B/16-sized encoders at
# their ImageNet resolution. Sized for one GPU machine (12 loader workers).
data_root = 'data/embedded_224'
embedded_cfg = dict(img_size=224)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=224,
        crop_ratio_range=(0.35, 1.0),
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs')
]

train_dataloader = dict(
    batch_size=128,
    num_workers=12,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='mmssl.EmbeddedClsDataset',
        data_root=data_root,
        embedded_cfg=embedded_cfg,
        split='train',
        with_label=False,
        pipeline=train_pipeline))

# Frozen-feature evaluation (kNN / linear probe) on the labelled split.
eval_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
frozen_eval = dict(
    train_dataloader=dict(
        batch_size=128,
        num_workers=4,
        sampler=dict(type='DefaultSampler', shuffle=False),
        collate_fn=dict(type='default_collate'),
        dataset=dict(
            type='mmssl.EmbeddedClsDataset',
            data_root=data_root,
            embedded_cfg=embedded_cfg,
            split='train',
            pipeline=eval_pipeline)),
    val_dataloader=dict(
        batch_size=128,
        num_workers=4,
        sampler=dict(type='DefaultSampler', shuffle=False),
        collate_fn=dict(type='default_collate'),
        dataset=dict(
            type='mmssl.EmbeddedClsDataset',
            data_root=data_root,
            embedded_cfg=embedded_cfg,
            split='val',
            pipeline=eval_pipeline)))
