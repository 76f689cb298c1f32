# Copyright (c) mmssl contributors. All rights reserved.
"""DiffFashion from files: garment and reference images in, results out.

The method lives in :mod:`mmssl.models.diffusion` (the sampler is the
registered ``mmssl.DiffFashionEditor``), its scores in
:mod:`mmssl.evaluation.functional.fashion` and the image reading and writing
in :mod:`mmssl.utils.image_io`; this module loads the files and calls them.
"""
from typing import Callable, Optional, Union

import torch

from mmssl.evaluation.functional.fashion import fashion_metrics, pixel_metrics
from mmssl.models.diffusion import (DiffFashionEditor, MaskError,
                                    WeightFileError, colour_match,
                                    load_diffusion_model, load_vit,
                                    load_vit_weights, pack_editor_checkpoint)
from mmssl.utils.image_io import (load_fashion_image, load_mask_image,
                                  save_image, write_outputs)
from mmssl.visualization.grids import make_grid

__all__ = [
    'DiffFashion', 'MaskError', 'WeightFileError', 'load_fashion_image',
    'load_mask_image', 'load_diffusion_model', 'load_vit', 'make_grid',
    'save_image', 'colour_match', 'write_outputs', 'fashion_metrics',
    'pixel_metrics', 'load_vit_weights', 'pack_editor_checkpoint'
]

Image = Union[str, torch.Tensor]


class DiffFashion:
    """DiffFashion inferencer: image files (or tensors) in, results out.

    Example::

        pipe = DiffFashion.from_files(
            'work_dirs/ddpm_tiny/epoch_10.pth', 'work_dirs/mae30/epoch_30.pth',
            config='configs/difffashion/ddpm_unet-tiny_1xb64-10e_embedded32.py',
            vit_config='configs/mae/mae_vit-tiny-p8_1xb64-coslr-30e_embedded.py',
            garment_label=4)
        out = pipe('garment.png', 'reference.png', seed=0)
        out['result'], out['mask']  # (1, 3, 32, 32) in [-1, 1], (1, 1, 32, 32)

    Args:
        model (DiffFashionEditor): the sampler.
        size (int, optional): side the images are read at; defaults to the
            UNet's ``sample_size``.
    """

    def __init__(self,
                 model: DiffFashionEditor,
                 size: Optional[int] = None) -> None:
        self.model = model.eval()
        sample = model.unet.config.sample_size
        self.size = int(
            size or (sample if isinstance(sample, int) else sample[0]))

    @classmethod
    def from_files(cls,
                   checkpoint: str,
                   vit_checkpoint: str,
                   config: Optional[str] = None,
                   vit_config: Optional[str] = None,
                   device: Union[str, torch.device] = 'cpu',
                   size: Optional[int] = None,
                   **editor_args) -> 'DiffFashion':
        """Load the diffusion model and the ViT and build the editor.

        Args:
            checkpoint (str): ``ClassCondDDPM`` weights (see
                :func:`load_diffusion_model`).
            vit_checkpoint (str): guidance ViT weights.
            config (str, optional): config of the diffusion model; default
                the one stored in the checkpoint.
            vit_config (str, optional): config with the ViT as
                ``model.backbone``; default DINO ViT-B/8.
            device (str | torch.device): where to run.
            size (int, optional): working side (default the UNet's).
            **editor_args: other arguments of ``DiffFashionEditor``
                (``garment_label``, ``schedule``, ``mask_generator``,
                ``guidance``, ``colour_matching`` ...).
        """
        diffusion = load_diffusion_model(config, checkpoint, device)
        vit = load_vit(vit_config, vit_checkpoint, device)
        editor = DiffFashionEditor(diffusion=diffusion, vit=vit, **editor_args)
        return cls(editor.to(device), size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def read(self, image: Image, is_mask: bool = False) -> torch.Tensor:
        """A file (or a (1, C, H, W) tensor, returned as is) as (1, 3, S, S)
        in [-1, 1] (``is_mask``: (1, 1, S, S) in {0, 1}) on the device."""
        if isinstance(image, torch.Tensor):
            return image.to(self.device)
        read = load_mask_image if is_mask else load_fashion_image
        return read(image, self.size).to(self.device)

    def num_model_steps(self,
                        use_mask: bool = True,
                        garment_label: Optional[int] = None) -> int:
        """Denoising steps of one call with an automatic mask (``use_mask``)
        or without a mask run."""
        return self.model.num_model_steps(use_mask, garment_label)

    def __call__(self,
                 garment: Image,
                 reference: Image,
                 mask: Optional[Image] = None,
                 garment_label: Optional[int] = None,
                 use_mask: bool = True,
                 seed: Optional[int] = 0,
                 progress: Optional[Callable[[], None]] = None) -> dict:
        """Transfer the appearance of ``reference`` onto ``garment``.

        Args:
            garment (str | Tensor): garment image file or (1, 3, S, S).
            reference (str | Tensor): appearance image file or tensor.
            mask (str | Tensor, optional): a given mask (white = garment)
                instead of the automatic one.
            garment_label (int, optional): defaults to the editor's.
            use_mask (bool): False: no mask, no background blending.
            seed (int, optional): seed of the sampling noise.
            progress (callable, optional): called once per model step.

        Returns:
            dict: the output of :meth:`DiffFashionEditor.edit` (``result``,
            ``raw``, ``mask``, ``score``, ``per_set``) plus the ``garment``
            and ``reference`` tensors that went in.
        """
        g, r = self.read(garment), self.read(reference)
        m = None if mask is None else self.read(mask, is_mask=True)
        out = self.model.edit(
            g,
            r,
            garment_label,
            mask=m,
            use_mask=use_mask,
            seed=seed,
            progress=progress)
        out.update(garment=g, reference=r)
        return out

    def metrics(self, out: dict, true_mask: Optional[Image] = None) -> dict:
        """:func:`fashion_metrics` of a call's output with the guidance ViT
        (``true_mask``: the true silhouette, a file or (1, 1, S, S))."""
        true = None if true_mask is None else self.read(true_mask, True)
        return fashion_metrics(out['result'], out['garment'], out['reference'],
                               out['mask'], self.model.extractor, true)
