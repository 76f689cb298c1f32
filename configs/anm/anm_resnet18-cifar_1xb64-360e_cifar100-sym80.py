# anm_resnet18-cifar_1xb64-360e_cifar100-sym50.py at 80 % symmetric noise.
#   python tools/train.py configs/anm/anm_resnet18-cifar_1xb64-360e_cifar100-sym80.py
_base_ = ['./anm_resnet18-cifar_1xb64-360e_cifar100-sym50.py']

train_dataloader = dict(
    dataset=dict(
        noise_rate=0.8,
        noise_file='data/cifar100/noisy_labels/symmetric_0.8_seed0.json'))
