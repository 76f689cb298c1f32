# anm_resnet18-cifar_1xb64-360e_cifar100-sym50.py at 90 % symmetric noise.
#   python tools/train.py configs/anm/anm_resnet18-cifar_1xb64-360e_cifar100-sym90.py
_base_ = ['./anm_resnet18-cifar_1xb64-360e_cifar100-sym50.py']

train_dataloader = dict(
    dataset=dict(
        noise_rate=0.9,
        noise_file='data/cifar100/noisy_labels/symmetric_0.9_seed0.json'))
# DivideMix's setting for 90 % noise: the GMM reads the mean of the last 5
# refreshes' normalised losses
custom_hooks = [
    dict(
        type='mmssl.LabelQualityHook',
        interval=1,
        pipeline={{_base_.test_pipeline}},
        batch_size=500,
        gmm=dict(max_iter=10, tol=1e-2, reg_covar=5e-4),
        average_last=5)
]
