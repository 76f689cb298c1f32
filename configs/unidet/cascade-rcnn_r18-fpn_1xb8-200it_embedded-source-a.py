# Per-source baseline: the same Cascade R-CNN trained on source_a alone, in
# its own 6-class label space (flat sigmoid BCE), evaluated with mmdet's
# CocoMetric on the same source_a validation annotations as the unified
# detectors. 200 iterations: the two per-source detectors together cost as
# many steps as one unified detector (400).
_base_ = './unidet_cascade-rcnn_r18-fpn_1xb8-hier-400it_embedded.py'

source = 'source_a'
max_iters = 200
_head = dict(
    type='mmssl.UniDetBBoxHead',
    in_channels=64,
    fc_out_channels=256,
    roi_feat_size=7,
    num_classes=6,
    bbox_coder=dict(
        type='DeltaXYWHBBoxCoder',
        target_means=[0., 0., 0., 0.],
        target_stds=[0.04, 0.04, 0.08, 0.08]),
    reg_class_agnostic=True,
    loss_cls=dict(
        type='mmssl.HierarchyBCELoss',
        set_pos_parents=False,
        ignore_children=False,
        loss_weight=1.5),
    loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0))
model = dict(roi_head=dict(bbox_head=[_head, _head, _head]))

train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='mmssl.EmbeddedCocoDataset',
        data_root='data/embedded/',
        source=source,
        split='train',
        filter_cfg=dict(filter_empty_gt=True, min_size=4),
        pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='mmssl.EmbeddedCocoDataset',
        data_root='data/embedded/',
        source=source,
        split='val',
        test_mode=True,
        pipeline={{_base_.test_pipeline}}))
test_dataloader = val_dataloader
val_evaluator = dict(
    _delete_=True,
    type='CocoMetric',
    ann_file='data/embedded/unidet/source_a/annotations/instances_val.json',
    metric='bbox')
test_evaluator = val_evaluator

train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(
        type='MultiStepLR',
        by_epoch=False,
        begin=0,
        end=max_iters,
        milestones=[int(max_iters * 0.75),
                    int(max_iters * 0.9)],
        gamma=0.1)
]
default_hooks = dict(checkpoint=dict(interval=max_iters))
