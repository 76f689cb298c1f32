# Per-source baseline on source_b: the source_a baseline with the other
# source's training data, validation data and annotations (both sources
# have 6 classes).
_base_ = './cascade-rcnn_r18-fpn_1xb8-200it_embedded-source-a.py'

source = 'source_b'
train_dataloader = dict(dataset=dict(source=source))
val_dataloader = dict(dataset=dict(source=source))
test_dataloader = val_dataloader
val_evaluator = dict(
    ann_file='data/embedded/unidet/source_b/annotations/instances_val.json')
test_evaluator = val_evaluator
