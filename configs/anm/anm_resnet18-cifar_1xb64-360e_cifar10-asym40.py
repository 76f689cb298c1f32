# anm_resnet18-cifar_1xb64-360e_cifar10-sym50.py with 40 % asymmetric noise
# (DivideMix's class flips: truck -> automobile, bird -> airplane,
# deer -> horse, cat <-> dog, each with probability 0.4). As DivideMix, the
# warm-up adds the confidence penalty (mean sum p log p) for this noise.
#   python tools/train.py configs/anm/anm_resnet18-cifar_1xb64-360e_cifar10-asym40.py
_base_ = ['./anm_resnet18-cifar_1xb64-360e_cifar10-sym50.py']

train_dataloader = dict(
    dataset=dict(
        noise_type='asymmetric',
        noise_rate=0.4,
        noise_file='data/cifar10/noisy_labels/asymmetric_0.4_seed0.json'))
model = dict(warmup_conf_penalty=1.0)
