# The comparison of the hierarchy-aware loss: the same detector, data,
# unified label space and schedule, with a flat per-class sigmoid BCE (every
# column not the ground-truth class is a negative; no ancestors, no ignored
# columns), i.e. mmssl.HierarchyBCELoss with both hierarchy flags off.
_base_ = './unidet_cascade-rcnn_r18-fpn_1xb8-hier-400it_embedded.py'

flat_loss = dict(
    type='mmssl.HierarchyBCELoss',
    set_pos_parents=False,
    ignore_children=False,
    loss_weight=1.5)
_head = dict(
    type='mmssl.UniDetBBoxHead',
    in_channels=64,
    fc_out_channels=256,
    roi_feat_size=7,
    num_classes=10,
    bbox_coder=dict(
        type='DeltaXYWHBBoxCoder',
        target_means=[0., 0., 0., 0.],
        target_stds=[0.04, 0.04, 0.08, 0.08]),
    reg_class_agnostic=True,
    loss_cls=flat_loss,
    loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0))
model = dict(roi_head=dict(bbox_head=[_head, _head, _head]))
