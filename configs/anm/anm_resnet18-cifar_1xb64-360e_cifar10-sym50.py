# ANM (adversarial noisy masking, SANM's AMG + NLR + SMR parts) on CIFAR-10
# with 50 % symmetric label noise (DivideMix's protocol: half the labels
# redrawn from all 10 classes, so 45 % end up wrong), on a single
# quality-weighted ResNet-18 (CIFAR stem) instead of DivideMix's two
# co-trained networks (configs/anm/README.md).
#   python tools/train.py configs/anm/anm_resnet18-cifar_1xb64-360e_cifar10-sym50.py
# Data: the CIFAR-10 python files in data/cifar10/cifar-10-batches-py (no
# download); the noisy labels are cached in data/cifar10/noisy_labels/.
# Spec section 4 for one network: SGD lr 0.02, momentum 0.9, wd 5e-4,
# batch 64, 360 epochs with lr / 10 from epoch 150, 10 warm-up epochs of
# plain cross-entropy; from then on the label quality of every training
# image is refreshed before each epoch (GMM on the losses).
_base_ = ['../_base_/default_runtime.py']

max_epochs = 360
warmup_epochs = 10
num_classes = 10
# PackInputs keys that keep sample_idx and the clean label (NOISY_META_KEYS)
meta_keys = ('sample_idx', 'img_path', 'ori_shape', 'img_shape',
             'scale_factor', 'flip', 'flip_direction', 'gt_label_clean')

data_preprocessor = dict(
    type='ClsDataPreprocessor',
    num_classes=num_classes,
    mean=[125.307, 122.961, 113.8575],
    std=[51.5865, 50.847, 51.255],
    to_rgb=False)  # the CIFAR arrays are RGB

train_pipeline = [
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs', meta_keys=meta_keys),
]
# deterministic: the quality pass over the training set and the test set
test_pipeline = [dict(type='PackInputs', meta_keys=meta_keys)]

train_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='mmssl.NoisyLabelDataset',
        dataset=dict(
            type='CIFAR10',
            data_root='data/cifar10',
            split='train',
            download=False),
        noise_type='symmetric',
        noise_rate=0.5,
        seed=0,
        noise_file='data/cifar10/noisy_labels/symmetric_0.5_seed0.json',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=500,
    num_workers=2,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='CIFAR10',
        data_root='data/cifar10',
        split='test',
        download=False,
        pipeline=test_pipeline))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

model = dict(
    type='mmssl.ANMClassifier',
    data_preprocessor=data_preprocessor,
    # the last stage is the activation / reconstruction map: 512 x 4 x 4
    backbone=dict(type='ResNet_CIFAR', depth=18, out_indices=(3, )),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',  # logits: no double softmax
        num_classes=num_classes,
        in_channels=512,
        loss=dict(type='CrossEntropyLoss')),
    masking=dict(
        type='mmssl.AdversarialNoisyMasking',
        base_ratio=(0.02, 0.07),
        quality_coef=0.03,
        area_factor=0.5,
        aspect=(0.8, 1.25),
        anchor='center',  # the paper's; 'corner' is the reference code's
        locations=('max', 'min'),
        fill='uniform_const'),
    decoder=dict(type='mmssl.MaskReconstructionDecoder', preset='cifar'),
    loss_rec_weight=0.02,
    num_train_samples=50000,
    warmup_epochs=warmup_epochs,
    refine_labels=True,
    sharpen_temperature=0.5)

custom_hooks = [
    dict(
        type='mmssl.LabelQualityHook',
        interval=1,
        pipeline=test_pipeline,
        batch_size=500,
        gmm=dict(max_iter=10, tol=1e-2, reg_covar=5e-4),
        average_last=1)
]

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.02, momentum=0.9, weight_decay=5e-4))
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=True, milestones=[150], gamma=0.1)
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=10)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=64)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=100),
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=3))
# the decoder and the masked branch are idle during the warm-up
find_unused_parameters = True
randomness = dict(seed=0, diff_rank_seed=True)
