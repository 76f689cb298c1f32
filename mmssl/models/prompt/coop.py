# Copyright (c) mmssl contributors. All rights reserved.
"""CoOp (context optimisation) on a frozen CLIP, with SubPT's NFL loss."""
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel

from mmssl.models.clip import (build_clip, encode_text_embeddings, freeze,
                               load_clip_checkpoint, resolve_templates,
                               zero_shot_text_features)
from mmssl.registry import MODELS
from .nfl import nfl_loss
from .prompt_learner import NameTokens, PromptLearner

__all__ = ['CoOp']


@MODELS.register_module()
class CoOp(BaseModel):
    """CoOp: learn the context words of CLIP's prompt, CLIP frozen.

    Only ``prompt_learner.ctx`` is trainable. Training classifies the images
    among the *training* names (the first ``num_base`` class names in the
    base-to-novel protocol, else all) with
    ``exp(logit_scale) * cos(image, text)`` and cross-entropy. Prediction
    scores every image against *all* class names; since each class's text
    feature does not depend on the other classes, the argmax restricted to
    the base (or novel) columns equals evaluating with the base (or novel)
    names alone, which is what :class:`mmssl.BaseNovelAccuracy` does.

    NFL (``nfl=dict(...)``) adds ``weight * L_nfl(u, z)``: ``u`` the text
    features that the current context makes with names that have no images
    (``names='novel'``: the novel half of the class names; or a list), ``z``
    their zero-shot features with the prompt ensemble ``templates``
    (computed once, from the frozen CLIP; ``'openai_imagenet'`` is OpenAI's
    80 ImageNet templates, the reference's target with the data set's own
    template added). SubPT's gradient projection is a hook
    (:class:`mmssl.SubPTHook`), not part of the model.

    Class names come from ``class_names`` or, when None, from the data set
    through :class:`mmssl.PromptClassNamesHook` (``set_class_names``).

    Args:
        clip (dict): ``arch`` (see ``mmssl.models.clip.CLIP_ARCHS``),
            ``checkpoint`` (a local OpenAI ``.pt`` or an mmssl CLIP
            checkpoint, loaded in :meth:`init_weights`, i.e. by the Runner
            before training) and other arguments of ``build_clip``.
        class_names (Sequence[str], optional): all class names, base first.
        num_base (int, optional): train on the first ``num_base`` names
            only (base-to-novel); None trains on all.
        n_ctx (int): context tokens M. Defaults to 16.
        ctx_init (str, optional): init words (M = their token count).
        class_token_position (str): ``'end'``, ``'middle'`` or ``'front'``.
        csc (bool): class-specific context. Defaults to False.
        num_classes (int, optional): K for ``csc`` (defaults to the number
            of training names when ``class_names`` is given).
        nfl (dict, optional): ``names`` (``'novel'`` or a list),
            ``weight`` (lambda, 1.0), ``loss`` (``'cosine'`` or ``'mse'``),
            ``templates`` (zero-shot prompts of the targets: templates with
            ``{}``, ``'openai_imagenet'`` or a list of both; default
            ``['a photo of a {}.']``).
        data_preprocessor (dict, optional): e.g.
            ``mmpretrain.ClsDataPreprocessor`` with CLIP's mean and std.
        init_cfg (dict, optional): initialisation config.
    """

    def __init__(self,
                 clip: dict,
                 class_names: Optional[Sequence[str]] = None,
                 num_base: Optional[int] = None,
                 n_ctx: int = 16,
                 ctx_init: Optional[str] = None,
                 class_token_position: str = 'end',
                 csc: bool = False,
                 num_classes: Optional[int] = None,
                 nfl: Optional[dict] = None,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        clip = dict(clip)
        self.clip_checkpoint = clip.pop('checkpoint', None)
        self.clip = freeze(build_clip(**clip))
        self.clip.eval()
        if csc and num_classes is None and class_names is not None:
            num_classes = num_base or len(class_names)
        self.prompt_learner = PromptLearner(
            self.clip.token_embedding,
            self.clip.positional_embedding.shape[0],
            n_ctx=n_ctx,
            ctx_init=ctx_init,
            class_token_position=class_token_position,
            csc=csc,
            num_classes=num_classes)
        self.nfl_cfg = None if nfl is None else self._nfl_cfg(nfl)
        if self.nfl_cfg is not None and csc:
            raise ValueError('NFL needs a unified context (csc=False): '
                             'names without images have no context row')
        self.class_names: Optional[List[str]] = None
        self.num_base: Optional[int] = None
        self._tokens: Dict[str, NameTokens] = {}
        self._nfl_targets: Optional[torch.Tensor] = None
        if class_names is not None:
            self.set_class_names(class_names, num_base)

    # ------------------------------------------------------------ set-up
    @staticmethod
    def _nfl_cfg(nfl: dict) -> dict:
        """Defaults and checks of the ``nfl`` config."""
        cfg = dict(
            names='novel',
            weight=1.0,
            loss='cosine',
            templates=['a photo of a {}.'])
        unknown = sorted(set(nfl) - set(cfg))
        if unknown:
            raise KeyError(f'mmssl.CoOp: unknown nfl keys {unknown}; '
                           f'expected some of {sorted(cfg)}')
        cfg.update(nfl)
        if cfg['loss'] not in ('cosine', 'mse'):
            raise ValueError(f"mmssl.CoOp: nfl.loss must be 'cosine' or "
                             f"'mse', got {cfg['loss']!r}")
        if not float(cfg['weight']) >= 0:
            raise ValueError(f'mmssl.CoOp: nfl.weight is the lambda of '
                             f'L_ce + lambda * L_nfl and must be >= 0, got '
                             f"{cfg['weight']!r}")
        names = cfg['names']
        if names != 'novel' and (isinstance(names, str) or not names):
            raise ValueError(f"mmssl.CoOp: nfl.names must be 'novel' or a "
                             f'non-empty list of class names, got {names!r}')
        cfg['weight'] = float(cfg['weight'])
        cfg['templates'] = resolve_templates(cfg['templates'])
        return cfg

    def init_weights(self) -> None:
        """Load the CLIP checkpoint; a context initialised from words
        (``ctx_init``) is then set again from the loaded token embeddings,
        so that the untrained prompt is the hand-written one of *this* CLIP
        (a random context keeps its seeded init)."""
        super().init_weights()
        if self.clip_checkpoint:
            load_clip_checkpoint(self.clip, self.clip_checkpoint)
            self.prompt_learner.reset_ctx_from_words()
            self._nfl_targets = None

    def train(self, mode: bool = True):
        """Train mode for the prompt learner only; CLIP stays in eval."""
        super().train(mode)
        self.clip.eval()
        return self

    def set_class_names(self,
                        class_names: Sequence[str],
                        num_base: Optional[int] = None) -> None:
        """Use ``class_names`` (base first); train on the first
        ``num_base`` of them (all if None)."""
        names = [str(n) for n in class_names]
        if num_base is not None and not 0 < num_base <= len(names):
            raise ValueError(f'num_base={num_base} outside 1..{len(names)}')
        self.class_names, self.num_base = names, num_base
        self._tokens = {}
        self._nfl_targets = None

    @property
    def train_names(self) -> List[str]:
        self._check_names()
        return self.class_names[:self.num_base or len(self.class_names)]

    @property
    def nfl_names(self) -> List[str]:
        names = self.nfl_cfg['names']
        if names == 'novel':
            self._check_names()
            if not self.num_base or self.num_base == len(self.class_names):
                raise ValueError("NFL names='novel' needs num_base < the "
                                 'number of class names')
            return self.class_names[self.num_base:]
        return list(names)

    def _check_names(self) -> None:
        if self.class_names is None:
            raise RuntimeError(
                'mmssl.CoOp has no class names: give model.class_names or '
                "add dict(type='mmssl.PromptClassNamesHook') to custom_hooks")

    def _name_tokens(self, key: str) -> NameTokens:
        if key not in self._tokens:
            self._check_names()
            names = dict(
                all=lambda: self.class_names,
                train=lambda: self.train_names,
                nfl=lambda: self.nfl_names)[key]()
            self._tokens[key] = self.prompt_learner.encode_names(names)
        tokens = self._tokens[key]
        if tokens.token_ids.device != self.prompt_learner.ctx.device:
            tokens.to(self.prompt_learner.ctx.device)
        return tokens

    # ------------------------------------------------------------ features
    def text_features(self, key: str = 'all') -> torch.Tensor:
        """L2-normalised text features ``(K, E)`` of a name set (``'all'``,
        ``'train'`` or ``'nfl'``) with the current context."""
        tokens = self._name_tokens(key)
        prompts = self.prompt_learner(tokens)
        feats = encode_text_embeddings(self.clip, prompts, tokens.token_ids)
        return F.normalize(feats, dim=-1)

    def image_features(self, inputs: torch.Tensor) -> torch.Tensor:
        """L2-normalised image features ``(N, E)`` of ``(N, 3, H, W)``."""
        with torch.no_grad():
            return F.normalize(self.clip.encode_image(inputs), dim=-1)

    def nfl_targets(self) -> torch.Tensor:
        """Zero-shot text features ``(N_nfl, E)`` of the NFL names."""
        if self._nfl_targets is None:
            with torch.no_grad():
                self._nfl_targets = zero_shot_text_features(
                    self.clip, self.nfl_names, self.nfl_cfg['templates'])
        return self._nfl_targets.to(self.prompt_learner.ctx.device)

    # ------------------------------------------------------------ modes
    def forward(self,
                inputs: torch.Tensor,
                data_samples: Optional[List] = None,
                mode: str = 'tensor'):
        """``inputs``: ``(N, 3, H, W)``; ``'tensor'`` gives logits
        ``(N, K_all)``."""
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self.logits(inputs, 'all')
        raise RuntimeError(f'Invalid mode "{mode}".')

    def logits(self, inputs: torch.Tensor, key: str = 'all') -> torch.Tensor:
        """``exp(logit_scale) * cos`` ``(N, K)`` against a name set."""
        scale = self.clip.logit_scale.exp().detach()
        return scale * self.image_features(inputs) @ \
            self.text_features(key).t()

    def loss(self, inputs: torch.Tensor,
             data_samples: List) -> Dict[str, torch.Tensor]:
        """Cross-entropy over the training names (+ NFL)."""
        labels = torch.stack([ds.gt_label for ds in data_samples]).view(-1)
        labels = labels.to(inputs.device)
        num_train = len(self.train_names)
        if int(labels.max()) >= num_train:
            raise ValueError(f'a training label ({int(labels.max())}) is not '
                             f'among the {num_train} training classes')
        logits = self.logits(inputs, 'train')
        losses = dict(loss_ce=F.cross_entropy(logits, labels))
        losses['acc'] = (logits.argmax(-1) == labels).float().mean().detach()
        if self.nfl_cfg is not None and self.nfl_cfg['weight'] > 0:
            feats = self.text_features('nfl')
            losses['loss_nfl'] = self.nfl_cfg['weight'] * nfl_loss(
                feats, self.nfl_targets(), self.nfl_cfg['loss'])
        return losses

    @torch.no_grad()
    def predict(self,
                inputs: torch.Tensor,
                data_samples: Optional[List] = None) -> List:
        """Scores ``(K_all,)`` of every image into ``pred_score``."""
        from mmpretrain.structures import DataSample
        scores = self.logits(inputs, 'all').softmax(-1)
        if data_samples is None:
            data_samples = [DataSample() for _ in range(len(inputs))]
        for ds, score in zip(data_samples, scores):
            ds.set_pred_score(score).set_pred_label(score.argmax())
        return data_samples
