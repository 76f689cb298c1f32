# Copyright (c) mmssl contributors. All rights reserved.
"""End-to-end finetuning of a backbone with a linear head, for evaluation.

A small, fixed budget: a copy of the backbone plus ``LayerNorm + Linear`` on
its pooled features is trained with AdamW and a per-step cosine schedule,
with a seeded head initialisation and a seeded data order. Two backbones
(e.g. pretrained and random) evaluated with the same arguments therefore see
exactly the same batches in the same order.
"""
import contextlib
import copy
import math
import random
from typing import Dict, Iterator, Optional, Union

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader

from mmssl.utils.validation import check_float, check_int
from .features import (_batch_inputs, _labels_of, _model_device,
                       forward_backbone, get_backbone, get_data_preprocessor)

__all__ = ['seeded_rng', 'finetune_backbone']


@contextlib.contextmanager
def seeded_rng(seed: Optional[int] = None) -> Iterator[None]:
    """Seed Python, numpy and torch inside, restore their states on exit.

    Code run inside gets reproducible random numbers, and code run after it
    (e.g. the rest of a training run) the ones it would have had without it.

    Args:
        seed (int, optional): Seed for all three generators (and initialised
            CUDA devices); None only saves and restores the states.
    """
    py_state = random.getstate()
    np_state = np.random.get_state()
    cpu_state = torch.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() \
        if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    try:
        if seed is not None:
            random.seed(seed)
            np.random.seed(seed)
            torch.default_generator.manual_seed(seed)
            if cuda_states is not None:
                torch.cuda.manual_seed_all(seed)
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(cpu_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)


def _epoch_loader(loader: DataLoader, seed: int) -> DataLoader:
    # A fresh shuffled pass with its own generator: the order depends on
    # the seed and the epoch only, not on what ran before.
    num, batch_size = len(loader.dataset), loader.batch_size or 1
    return DataLoader(
        loader.dataset,
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
        collate_fn=loader.collate_fn,
        num_workers=loader.num_workers,
        worker_init_fn=loader.worker_init_fn,
        # a last batch of one sample breaks BatchNorm in train mode
        drop_last=num > batch_size and num % batch_size == 1)


def _logits(backbone: nn.Module, head: nn.Module,
            preprocessor: Optional[nn.Module], data: dict, pool: str,
            device: torch.device):
    if preprocessor is not None:
        data = preprocessor(data, False)
    inputs = _batch_inputs(data['inputs']).to(device)
    feats = forward_backbone(backbone, inputs, pool)
    return head(feats), _labels_of(data['data_samples']).to(device)


def finetune_backbone(
        model: nn.Module,
        train_loader: DataLoader,
        val_loader: DataLoader,
        num_classes: int,
        epochs: int = 5,
        lr: float = 1e-3,
        weight_decay: float = 0.05,
        pool: str = 'auto',
        seed: int = 0,
        device: Optional[Union[str, torch.device]] = None) -> Dict[str, float]:
    """Finetune a copy of the model's backbone with a linear head.

    The model itself is not modified. Each batch goes through the model's
    data preprocessor (``training=False``: no batch augmentation) and the
    backbone without masking; the head is ``LayerNorm(C) + Linear(C, K)`` on
    the pooled features. Every backbone parameter that requires a gradient
    is trained (fixed ones, e.g. a sin-cos position embedding, stay fixed);
    weight decay applies to weights of rank >= 2 only.

    Args:
        model (nn.Module): An mmengine model with a ``backbone`` (or a bare
            backbone), possibly wrapped.
        train_loader (DataLoader): Training data; only its data set,
            ``batch_size``, ``collate_fn`` and ``num_workers`` are used, with
            a seeded shuffle per epoch.
        val_loader (DataLoader): Test data, read once in order.
        num_classes (int): Number of classes K.
        epochs (int): Training epochs. Defaults to 5.
        lr (float): Peak AdamW learning rate, cosine-decayed to 0 per step.
            Defaults to 1e-3.
        weight_decay (float): AdamW weight decay. Defaults to 0.05.
        pool (str): Feature pooling; see
            :func:`~mmssl.evaluation.protocols.features.pool_features`.
            Defaults to 'auto'.
        seed (int): Seed of the head initialisation, dropout and data order.
            Defaults to 0.
        device (str | torch.device, optional): Where to train; None uses the
            model's device.

    Returns:
        dict[str, float]: ``top1`` test accuracy in percent and
        ``train_loss``, the mean loss of the last epoch.
    """
    check_int(num_classes, 'num_classes', 'finetune_backbone', minimum=2)
    check_int(epochs, 'epochs', 'finetune_backbone')
    check_float(lr, 'lr', 'finetune_backbone', low=0, inclusive=False)
    device = torch.device(device) if device is not None \
        else _model_device(get_backbone(model))
    backbone = copy.deepcopy(get_backbone(model)).to(device)
    preprocessor = get_data_preprocessor(model)
    if preprocessor is not None:
        preprocessor = copy.deepcopy(preprocessor).to(device).eval()

    with seeded_rng(seed):
        backbone.eval()
        with torch.no_grad():
            probe = _logits(backbone, nn.Identity(), preprocessor,
                            next(iter(val_loader)), pool, device)[0]
        width = probe.shape[1]
        head = nn.Sequential(
            nn.LayerNorm(width), nn.Linear(width, num_classes)).to(device)
        nn.init.trunc_normal_(head[1].weight, std=0.01)
        nn.init.zeros_(head[1].bias)

        params = [p for p in backbone.parameters() if p.requires_grad]
        params += list(head.parameters())
        groups = [
            dict(
                params=[p for p in params if p.ndim >= 2],
                weight_decay=weight_decay),
            dict(params=[p for p in params if p.ndim < 2], weight_decay=0.)
        ]
        optimizer = torch.optim.AdamW(groups, lr=lr)
        loaders = [
            _epoch_loader(train_loader, seed + e) for e in range(epochs)
        ]
        total = max(1, sum(len(loader) for loader in loaders))

        def cosine(step: int) -> float:
            return 0.5 * (1 + math.cos(math.pi * step / total))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine)
        train_loss = float('nan')
        with torch.enable_grad():
            for loader in loaders:
                backbone.train()
                head.train()
                losses = []
                for data in loader:
                    logits, labels = _logits(backbone, head, preprocessor,
                                             data, pool, device)
                    loss = F.cross_entropy(logits, labels)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    scheduler.step()
                    losses.append(loss.item())
                train_loss = sum(losses) / max(1, len(losses))

        backbone.eval()
        head.eval()
        correct, seen = 0, 0
        with torch.no_grad():
            for data in val_loader:
                logits, labels = _logits(backbone, head, preprocessor, data,
                                         pool, device)
                correct += (logits.argmax(dim=1) == labels).sum().item()
                seen += labels.numel()
    return dict(top1=100.0 * correct / max(1, seen), train_loss=train_loss)
