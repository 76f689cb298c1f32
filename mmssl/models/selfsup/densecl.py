# Copyright (c) mmssl contributors. All rights reserved.
"""DenseCL on mmpretrain's implementation.

DenseCL (Wang et al., "Dense Contrastive Learning for Self-Supervised Visual
Pre-Training", CVPR 2021) is MoCo v2 plus a dense InfoNCE between the cells
of the projected feature maps of two views, each query cell paired with the
key cell whose backbone feature is most cosine-similar. mmpretrain's
``DenseCL`` is a faithful port; mmssl keeps its modules, buffers and
checkpoint layout (``backbone``, ``neck``, ``encoder_k``, ``queue``,
``queue_ptr``, ``queue2``, ``queue2_ptr``), so mmpretrain checkpoints load
unchanged, and changes:

* the losses are the pure functions of
  :mod:`mmssl.models.losses.dense_contrastive` (``head`` is
  :class:`mmssl.DenseCLLoss`), the correspondence
  :func:`~mmssl.models.losses.dense_contrastive.dense_correspondence` is a
  function of its own;
* bad configs fail at build time with the config key in the message
  (``queue_len``, ``feat_dim`` against the neck and backbone widths,
  ``loss_lambda`` in [0, 1], ``momentum`` in mmengine's convention), and a
  global batch that does not divide ``queue_len`` fails before the first
  step changes anything (mmpretrain: a bare ``assert`` after the forward);
* the queues are written with :func:`enqueue_` after a gather by
  :func:`mmssl.models.utils.concat_all_gather`, and the four key tensors are
  un-shuffled with one gather instead of four.

Momentum: the key encoder is mmengine's ``ExponentialMovingAverage`` of
``nn.Sequential(backbone, neck)``, whose ``momentum`` is the weight of the
*new* (query) parameters: ``theta_k <- (1 - momentum) theta_k + momentum
theta_q``. The paper's m = 0.999 is therefore ``momentum=0.001`` (the
default). Its first update copies the query encoder, as MoCo initialises the
key encoder. Buffers (BN statistics) are copied from the query encoder at
each update, as mmpretrain does; in training the key encoder's BN uses batch
statistics anyway.

Shuffle-BN: the key batch is shuffled across processes with mmpretrain's
``batch_shuffle_ddp`` (all-gather, one permutation broadcast from rank 0)
and un-shuffled after the key forward, so that BN statistics of the key
encoder mix images of other processes. In one process this is an in-batch
permutation, which plain BN ignores: single-device runs with BN do not
prevent BN statistics leakage between query and key. With
:class:`~mmssl.models.utils.SplitBatchNorm` in the backbone (``norm_cfg=dict(
type='mmssl.SplitBatchNorm', num_splits=8)``) the batch is normalised in
groups as if spread over ``num_splits`` processes, and the permutation then
puts a key in another group than its query, which is MoCo's single-GPU
emulation of shuffle-BN.
"""
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.dist import get_world_size
from mmpretrain.models.selfsup.densecl import DenseCL as _MMPretrainDenseCL
from mmpretrain.models.utils import batch_shuffle_ddp, batch_unshuffle_ddp
from mmpretrain.structures import DataSample

from mmssl.registry import MODELS
from mmssl.utils.validation import check_float, check_int
from ..losses.dense_contrastive import dense_correspondence
from ..utils.dist import concat_all_gather


def check_queue_batch(queue_len: int, global_batch: int) -> None:
    """Raise a ValueError unless ``global_batch`` divides ``queue_len``.

    Args:
        queue_len (int): K, the number of queue entries.
        global_batch (int): images per step over all processes.
    """
    if global_batch < 1 or queue_len % global_batch:
        world = get_world_size()
        raise ValueError(
            f'model.queue_len (K={queue_len}) must be divisible by the '
            f'global batch size {global_batch} (train_dataloader.batch_size '
            f'{global_batch // world} x {world} processes); change one of '
            'them and set train_dataloader.drop_last=True so that every '
            'batch has the same size')


@torch.no_grad()
def enqueue_(queue: torch.Tensor, ptr: torch.Tensor,
             keys: torch.Tensor) -> None:
    """Write ``keys`` into ``queue`` at ``ptr`` and advance ``ptr``, in place.

    Args:
        queue (Tensor): (D, K) queue, one key per column.
        ptr (Tensor): (1, ) long, the next column to write.
        keys (Tensor): (B, D) keys of all processes (already gathered); B
            must divide K.

    Columns ``ptr, ..., ptr + B - 1`` (modulo K) become ``keys.T`` and
    ``ptr`` becomes ``(ptr + B) % K``.
    """
    if keys.dim() != 2 or keys.shape[1] != queue.shape[0]:
        raise ValueError(f'keys must be (B, {queue.shape[0]}), got '
                         f'{tuple(keys.shape)}')
    check_queue_batch(queue.shape[1], keys.shape[0])
    # tensor arithmetic on ptr, no Python int read from it: a compiled
    # forward keeps this in its graph (an int would break it and make
    # dynamo guard on the value)
    cols = (ptr + torch.arange(keys.shape[0], device=queue.device)) % \
        queue.shape[1]
    queue[:, cols] = keys.t().to(queue.dtype)
    ptr.copy_((ptr + keys.shape[0]) % queue.shape[1])


@MODELS.register_module()
class DenseCL(_MMPretrainDenseCL):
    """DenseCL self-supervisor.

    Args:
        backbone (dict): Backbone config with one output (its last stage),
            e.g. ``dict(type='ResNet', depth=50)``.
        neck (dict): ``DenseCLNeck`` config (global and dense projections).
        head (dict): The losses, ``dict(type='mmssl.DenseCLLoss',
            temperature=0.2)``.
        queue_len (int): K, entries of each queue; must be divisible by the
            global batch size. Defaults to 65536.
        feat_dim (int): D, the projection width (``neck.out_channels``).
            Defaults to 128.
        momentum (float): mmengine EMA weight of the query parameters in the
            key encoder update, ``1 - m``; 0.001 is the paper's m = 0.999.
            Defaults to 0.001.
        loss_lambda (float): lambda in ``(1 - lambda) L_q + lambda L_r``,
            in [0, 1]. Defaults to 0.5.
        pretrained (str, optional): Checkpoint to initialise from.
        data_preprocessor (dict, optional): Defaults to
            ``SelfSupDataPreprocessor``.
        init_cfg (dict | list[dict], optional): Initialisation config.
    """

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 head: dict,
                 queue_len: int = 65536,
                 feat_dim: int = 128,
                 momentum: float = 0.001,
                 loss_lambda: float = 0.5,
                 pretrained: Optional[str] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[Union[List[dict], dict]] = None) -> None:
        _check_args(head, queue_len, feat_dim, momentum, loss_lambda)
        super().__init__(
            backbone=backbone,
            neck=neck,
            head=head,
            queue_len=queue_len,
            feat_dim=feat_dim,
            momentum=momentum,
            loss_lambda=loss_lambda,
            pretrained=pretrained,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        if type(self.head).forward is nn.Module.forward:
            raise ValueError(f'{_HEAD_MSG}; got {type(self.head).__name__}')
        self._check_dims(feat_dim)

    def _check_dims(self, feat_dim: int) -> None:
        """Backbone, neck and queue widths agree (DenseCLNeck-like necks)."""
        out_indices = getattr(self.backbone, 'out_indices', None)
        if out_indices is not None and len(out_indices) != 1:
            raise ValueError('model.backbone.out_indices must name one stage '
                             f'(the last), got {tuple(out_indices)}')
        mlp = getattr(self.neck, 'mlp', None)
        mlp2 = getattr(self.neck, 'mlp2', None)
        if not (isinstance(mlp, nn.Sequential)
                and isinstance(mlp2, nn.Sequential)):
            return
        outs = (mlp[-1].out_features, mlp2[-1].out_channels)
        if outs != (feat_dim, feat_dim):
            raise ValueError(
                f'model.neck.out_channels ({outs[0]}) must equal '
                f'model.feat_dim ({feat_dim}), the width of the queues')
        in_channels = mlp[0].in_features
        width = getattr(self.backbone, 'feat_dim', None)
        num_stages = getattr(self.backbone, 'num_stages', None)
        if (width is not None and out_indices is not None
                and tuple(out_indices) == (num_stages - 1, )
                and width != in_channels):
            raise ValueError(
                f'model.neck.in_channels ({in_channels}) must equal the '
                f'width of the backbone output ({width})')

    @torch.no_grad()
    def _dequeue_and_enqueue(self, keys: torch.Tensor) -> None:
        """Gather (n, D) global keys of all processes into ``queue``."""
        enqueue_(self.queue, self.queue_ptr, concat_all_gather(keys))

    @torch.no_grad()
    def _dequeue_and_enqueue2(self, keys: torch.Tensor) -> None:
        """Gather (n, D) pooled dense keys of all processes into
        ``queue2``."""
        enqueue_(self.queue2, self.queue2_ptr, concat_all_gather(keys))

    def _grid(self, feat: torch.Tensor) -> torch.Tensor:
        """(n, C, H, W) backbone map on the dense projection's grid, (n, C,
        S)."""
        if getattr(self.neck, 'with_pool', False):
            feat = self.neck.pool(feat)
        return feat.flatten(2)

    @torch.no_grad()
    def encode_keys(
        self, im_k: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Update the key encoder (:meth:`momentum_update`), then encode the
        key view with shuffle-BN.

        Args:
            im_k (Tensor): (n, 3, H, W) key view of this process.

        Returns:
            tuple[Tensor]: in this process's image order, ``k`` (n, D) unit
            global keys, ``k2`` (n, D) unit pooled dense keys, ``k_grid``
            (n, D, S) unit dense keys and ``k_b`` (n, C, S) backbone
            features.
        """
        self.momentum_update()
        im_k, idx_unshuffle = batch_shuffle_ddp(im_k)
        backbone_k, neck_k = self.encoder_k.module
        feats = backbone_k(im_k)
        k, k_grid, k2 = neck_k(feats)
        parts = [
            F.normalize(k, dim=1),
            F.normalize(k2, dim=1),
            F.normalize(k_grid, dim=1),
            self._grid(feats[-1])
        ]
        flat = batch_unshuffle_ddp(
            torch.cat([p.flatten(1) for p in parts], dim=1), idx_unshuffle)
        chunks = flat.split([p[0].numel() for p in parts], dim=1)
        k, k2, k_grid, k_b = (c.reshape(-1, *p.shape[1:])
                              for c, p in zip(chunks, parts))
        return k, k2, k_grid, k_b

    @torch.compiler.disable
    def momentum_update(self) -> None:
        """Move the key encoder towards the query encoder, always eagerly.

        mmengine's ``ExponentialMovingAverage`` branches on its step
        count, a tensor; traced inside a compiled forward that broke the
        graph at every branch. Kept where MoCo has it, after the query
        forward (the averaged buffers include the BatchNorm statistics
        that forward has just updated), so a compiled step is two graphs,
        one on each side of this call.
        """
        self.encoder_k.update_parameters(
            nn.Sequential(self.backbone, self.neck))

    def loss(self, inputs: List[torch.Tensor], data_samples: List[DataSample],
             **kwargs) -> Dict[str, torch.Tensor]:
        """DenseCL losses of a batch of two-view images; then enqueue.

        Args:
            inputs (list[Tensor]): query and key views, (n, 3, H, W) each.
            data_samples (list[DataSample]): unused.

        Returns:
            dict: ``loss_single`` = (1 - lambda) L_q and ``loss_dense`` =
            lambda L_r, scalars (means over this process's n images and
            n * S cells).
        """
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError('DenseCL expects 2 views per image; use '
                             "dict(type='MultiView', num_views=2, ...) in "
                             'the pipeline')
        im_q, im_k = inputs
        check_queue_batch(self.queue_len, im_q.shape[0] * get_world_size())
        feats = self.backbone(im_q)
        q, q_grid, _ = self.neck(feats)
        q = F.normalize(q, dim=1)
        q_grid = F.normalize(q_grid, dim=1)  # (n, D, S)
        k, k2, k_grid, k_b = self.encode_keys(im_k)
        match = dense_correspondence(self._grid(feats[-1]), k_b)  # (n, S)
        # the queues change in place below, after autograd saved them
        raw = self.head(q, k, self.queue.clone(), q_grid, k_grid, match,
                        self.queue2.clone())
        losses = dict(
            loss_single=raw['loss_single'] * (1 - self.loss_lambda),
            loss_dense=raw['loss_dense'] * self.loss_lambda)
        self._dequeue_and_enqueue(k)
        self._dequeue_and_enqueue2(k2)
        return losses


_HEAD_MSG = ('model.head must be a loss module config called as head(q, k, '
             'queue, q_grid, k_grid, match, queue2), such as '
             "dict(type='mmssl.DenseCLLoss', temperature=0.2)")


def _check_args(head, queue_len, feat_dim, momentum, loss_lambda) -> None:
    """Constructor arguments of :class:`DenseCL`, with config keys."""
    if not isinstance(head, dict):
        raise ValueError(_HEAD_MSG)
    check_int(queue_len, 'model.queue_len', 'DenseCL')
    check_int(feat_dim, 'model.feat_dim', 'DenseCL')
    check_float(loss_lambda, 'model.loss_lambda', 'DenseCL', low=0, high=1)
    check_float(
        momentum,
        'model.momentum',
        'DenseCL',
        low=0,
        high=0.5,
        inclusive=(False, True),
        note='the mmengine EMA weight of the query parameters, 1 - m: '
        "0.001 for the paper's m = 0.999")
