# SubTuning of a SimCLR ResNet-50 on VTAB-1k Caltech101 (the spec's VTAB
# protocol: train on the 1000 images of train800val200, test on the full
# test split; 20 epochs as the reference's ResNet VTAB profile).
# The greedy search selects on the 800 / 200 split (or 5-fold CV over the
# 1000 images); give it this config with the 800 / 200 files:
#   python tools/analysis_tools/subtuning_search.py greedy CONFIG --use-val-split \
#     --cfg-options train_dataloader.dataset.dataset.ann_file=train800.txt \
#                   val_dataloader.dataset.ann_file=val200.txt
# Data: a VTAB-1k folder (as prepared by the NOAH / VPT releases) in
# data/vtab-1k/caltech101 with images/ and the split lists
# train800.txt, val200.txt, train800val200.txt, test.txt ("path label").
_base_ = ['./subtuning_resnet50-simclr_1xb256-amp-coslr-10e_cifar10.py']

data_root = 'data/vtab-1k/caltech101'
max_epochs = 20
num_classes = 102

model = dict(
    data_preprocessor=dict(num_classes=num_classes, to_rgb=True),
    head=dict(num_classes=num_classes))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(224, 224)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(224, 224)),
    dict(type='PackInputs')
]
train_dataloader = dict(
    batch_size=64,
    dataset=dict(
        dataset=dict(
            _delete_=True,
            type='CustomDataset',
            data_root=data_root,
            ann_file='train800val200.txt',
            data_prefix='',
            with_label=True),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64,
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root=data_root,
        ann_file='test.txt',
        data_prefix='',
        with_label=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader

param_scheduler = [
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs,
        by_epoch=True,
        eta_min=0.,
        convert_to_iter_based=True)
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
default_hooks = dict(
    checkpoint=dict(interval=max_epochs), logger=dict(interval=5))
auto_scale_lr = dict(base_batch_size=64)
