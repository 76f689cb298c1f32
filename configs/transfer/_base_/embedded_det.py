# Object detection on the embedded shapes data (COCO json with boxes and RLE
# masks, 64 px, 9 classes; made under data_root on first use): 500 training
# and 250 validation scenes of 1-3 objects 18-31 px across.
data_root = 'data/embedded'

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(64, 64), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(64, 64), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]

train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    # mmdet batches lists of samples (tools/train.py would default to
    # default_collate)
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='mmssl.EmbeddedCocoDataset',
        data_root=data_root,
        split='train',
        filter_cfg=dict(filter_empty_gt=True, min_size=4),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=25,
    num_workers=0,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='mmssl.EmbeddedCocoDataset',
        data_root=data_root,
        split='val',
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='CocoMetric',
    ann_file=data_root + '/det/annotations/instances_val.json',
    metric='bbox',
    format_only=False)
test_evaluator = val_evaluator
