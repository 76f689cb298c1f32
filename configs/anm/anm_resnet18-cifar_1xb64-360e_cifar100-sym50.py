# anm_resnet18-cifar_1xb64-360e_cifar10-sym50.py on CIFAR-100 (50 %
# symmetric noise over 100 classes, 20 warm-up epochs as DivideMix).
#   python tools/train.py configs/anm/anm_resnet18-cifar_1xb64-360e_cifar100-sym50.py
# Data: the CIFAR-100 python files in data/cifar100/cifar-100-python.
_base_ = ['./anm_resnet18-cifar_1xb64-360e_cifar10-sym50.py']

num_classes = 100
mean = [129.304, 124.070, 112.434]
std = [68.170, 65.392, 70.418]

data_preprocessor = dict(num_classes=num_classes, mean=mean, std=std)
train_dataloader = dict(
    dataset=dict(
        dataset=dict(type='CIFAR100', data_root='data/cifar100'),
        noise_file='data/cifar100/noisy_labels/symmetric_0.5_seed0.json'))
val_dataloader = dict(dataset=dict(type='CIFAR100', data_root='data/cifar100'))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, 5))
test_evaluator = val_evaluator

model = dict(
    data_preprocessor=dict(num_classes=num_classes, mean=mean, std=std),
    head=dict(num_classes=num_classes),
    warmup_epochs=20)
