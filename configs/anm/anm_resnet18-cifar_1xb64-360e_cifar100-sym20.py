# anm_resnet18-cifar_1xb64-360e_cifar100-sym50.py at 20 % symmetric noise.
#   python tools/train.py configs/anm/anm_resnet18-cifar_1xb64-360e_cifar100-sym20.py
_base_ = ['./anm_resnet18-cifar_1xb64-360e_cifar100-sym50.py']

train_dataloader = dict(
    dataset=dict(
        noise_rate=0.2,
        noise_file='data/cifar100/noisy_labels/symmetric_0.2_seed0.json'))
