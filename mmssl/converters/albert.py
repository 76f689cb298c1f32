# Copyright (c) mmssl contributors. All rights reserved.
"""Public ALBERT checkpoints -> mmssl's ``AlbertPretrainer`` /
``TextClassifier`` keys.

The converter behind ``tools/model_converters/albert_to_mmssl.py``. Two
layouts are read:

* HuggingFace ``transformers`` (``AlbertModel``, ``AlbertForPreTraining``,
  ``AlbertForMaskedLM``, ``AlbertForSequenceClassification`` state dicts);
* the TF variable names of google-research/albert, given as a dict of numpy
  arrays (export a TF checkpoint with ``r = tf.train.load_checkpoint(path);
  np.savez(out, **{n: r.get_tensor(n) for n, _ in
  tf.train.list_variables(path)})``; TensorFlow is not needed here). TF
  dense kernels are ``[in, out]`` and are transposed.

=====================================================  =====================
HuggingFace (``albert.`` prefix optional)               mmssl
=====================================================  =====================
``embeddings.word_embeddings.weight``                  ``backbone.embeddings
                                                       .word_embeddings
                                                       .weight``
``embeddings.{position,token_type}_embeddings.weight``  likewise
``embeddings.LayerNorm.*``                             ``backbone.embeddings
                                                       .norm.*``
``encoder.embedding_hidden_mapping_in.*``              ``backbone.projection
                                                       .*``
``encoder.albert_layer_groups.{g}.albert_layers.{i}``  block ``k = g * I +
                                                       i`` (I inner blocks)
``  .attention.{query,key,value}.*``                   ``backbone.attn_blocks
                                                       .{k}.{query,key,
                                                       value}.*``
``  .attention.dense.*``, ``.attention.LayerNorm.*``    ``...attn_blocks.{k}
                                                       .out_proj.*``,
                                                       ``.norm.*``
``  .ffn.*``, ``.ffn_output.*``                        ``backbone.ffn_blocks
                                                       .{k}.fc1.*``,
                                                       ``.fc2.*``
``  .full_layer_layer_norm.*``                         ``...ffn_blocks.{k}
                                                       .norm.*``
``pooler.*``                                           ``backbone.pooler.*``
``predictions.{dense,LayerNorm}.*``, ``.bias``         ``mlm_head.{dense,
                                                       norm}.*``, ``.bias``
``sop_classifier.classifier.*``                        ``sop_head.fc.*``
``classifier.*``                                       ``head.fc.*``
=====================================================  =====================

TF names: ``bert/embeddings/{word,position,token_type}_embeddings``,
``bert/embeddings/LayerNorm/{gamma,beta}``,
``bert/encoder/embedding_hidden_mapping_in/{kernel,bias}``,
``bert/encoder/transformer/group_{g}/inner_group_{i}/`` +
``attention_1/self/{query,key,value}``, ``attention_1/output/dense``,
``LayerNorm``, ``ffn_1/intermediate/dense``,
``ffn_1/intermediate/output/dense``, ``LayerNorm_1``;
``bert/pooler/dense``, ``cls/predictions/transform/{dense,LayerNorm}``,
``cls/predictions/output_bias``, ``cls/seq_relationship/output_{weights,
bias}`` and the fine-tuned ``output_{weights,bias}``. Optimizer slots
(``.../adam_m``, ``.../adam_v``) and ``global_step`` are skipped.

The decoder of the MLM head is the word embedding in both layouts (tied);
HuggingFace's ``predictions.decoder.*`` entries are checked to be the tied
copies and dropped, since mmssl's head ties by reference. Any other key is
an error (nothing is dropped silently), and so is a missing one.

The weights give every size except the number of layers and heads (the
layers share their weights): :func:`encoder_config_from_json` reads them
from the checkpoint's ``config.json`` (HuggingFace) or
``albert_config.json`` (TF).
"""
import re
from collections import OrderedDict
from typing import Any, Dict, NamedTuple, Optional, Tuple

import numpy as np
import torch

from mmssl.utils.validation import name_list
from .checkpoint import ConversionError

__all__ = [
    'AlbertCheckpoint', 'convert_albert', 'detect_albert_layout',
    'encoder_config_from_json', 'albert_to_tf_names', 'load_albert_state'
]

#: inner-block parts: HF suffix, TF suffix, mmssl (blocks, part), kernel
_BLOCK_PARTS = [
    ('attention.query', 'attention_1/self/query', 'attn_blocks', 'query'),
    ('attention.key', 'attention_1/self/key', 'attn_blocks', 'key'),
    ('attention.value', 'attention_1/self/value', 'attn_blocks', 'value'),
    ('attention.dense', 'attention_1/output/dense', 'attn_blocks', 'out_proj'),
    ('attention.LayerNorm', 'LayerNorm', 'attn_blocks', 'norm'),
    ('ffn', 'ffn_1/intermediate/dense', 'ffn_blocks', 'fc1'),
    ('ffn_output', 'ffn_1/intermediate/output/dense', 'ffn_blocks', 'fc2'),
    ('full_layer_layer_norm', 'LayerNorm_1', 'ffn_blocks', 'norm'),
]

#: non-block parts: HF module, TF scope, mmssl module, kind
#: (kind: 'linear' = TF kernel [in, out]; 'norm' = gamma/beta;
#: 'embedding' = one [rows, E] table; 'fc' = TF output_weights [out, in])
_PLAIN_PARTS = [
    ('embeddings.word_embeddings', 'bert/embeddings/word_embeddings',
     'backbone.embeddings.word_embeddings', 'embedding'),
    ('embeddings.position_embeddings', 'bert/embeddings/position_embeddings',
     'backbone.embeddings.position_embeddings', 'embedding'),
    ('embeddings.token_type_embeddings',
     'bert/embeddings/token_type_embeddings',
     'backbone.embeddings.token_type_embeddings', 'embedding'),
    ('embeddings.LayerNorm', 'bert/embeddings/LayerNorm',
     'backbone.embeddings.norm', 'norm'),
    ('encoder.embedding_hidden_mapping_in',
     'bert/encoder/embedding_hidden_mapping_in', 'backbone.projection',
     'linear'),
    ('pooler', 'bert/pooler/dense', 'backbone.pooler', 'linear'),
    ('predictions.dense', 'cls/predictions/transform/dense', 'mlm_head.dense',
     'linear'),
    ('predictions.LayerNorm', 'cls/predictions/transform/LayerNorm',
     'mlm_head.norm', 'norm'),
    ('sop_classifier.classifier', 'cls/seq_relationship', 'sop_head.fc', 'fc'),
    ('classifier', '', 'head.fc', 'fc'),
]

_HF_BLOCK = re.compile(
    r'^encoder\.albert_layer_groups\.(\d+)\.albert_layers\.(\d+)\.(.+)\.'
    r'(weight|bias)$')
_TF_BLOCK = re.compile(
    r'^bert/encoder/transformer/group_(\d+)/inner_group_(\d+)/(.+)/'
    r'(kernel|bias|gamma|beta)$')
_TF_SKIP = re.compile(r'(^global_step$|/adam_[mv]$|/lamb_[mv]$)')
_HF_SKIP = ('embeddings.position_ids', 'embeddings.token_type_ids')
_TF_LEAF = {
    'kernel': 'weight',
    'gamma': 'weight',
    'beta': 'bias',
    'bias': 'bias',
    'output_weights': 'weight',
    'output_bias': 'bias'
}


class AlbertCheckpoint(NamedTuple):
    """A converted ALBERT checkpoint.

    Attributes:
        state_dict (OrderedDict): mmssl keys (``backbone.``, ``mlm_head.``,
            ``sop_head.``, ``head.``) -> float tensors.
        sizes (dict): what the weights tell of the encoder: ``vocab_size``,
            ``embedding_size``, ``hidden_size``, ``ffn_dim``,
            ``num_hidden_groups``, ``inner_group_num``, ``max_position``,
            ``type_vocab_size``, ``with_pooler``, ``projection``.
        layout (str): ``'hf'`` or ``'tf'``.
    """
    state_dict: 'OrderedDict'
    sizes: Dict[str, Any]
    layout: str


def detect_albert_layout(state_dict: Dict) -> str:
    """``'tf'`` when the keys are TF variable names (``/``), else ``'hf'``.
    """
    if not state_dict:
        raise ConversionError('the checkpoint holds no weights')
    tf = sum('/' in k for k in state_dict)
    return 'tf' if tf > len(state_dict) / 2 else 'hf'


def _tensor(value: Any, key: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().float()
    try:
        return torch.from_numpy(np.ascontiguousarray(value)).float()
    except TypeError as err:
        raise ConversionError(f'{key!r} holds a {type(value).__name__}, not '
                              'an array') from err


def _convert_hf_key(key: str, value: torch.Tensor,
                    out: Dict) -> Optional[Tuple[int, int]]:
    """Store one HF entry in ``out``; returns (g, i) of a block entry."""
    match = _HF_BLOCK.match(key)
    if match:
        g, i, part, leaf = match.groups()
        for hf, _, blocks, name in _BLOCK_PARTS:
            if part == hf:
                out[('block', int(g), int(i), blocks, name, leaf)] = value
                return int(g), int(i)
        raise KeyError(key)
    if key == 'predictions.bias':
        out['mlm_head.bias'] = value
        return None
    if key in ('predictions.decoder.weight', 'predictions.decoder.bias'):
        out[('tied', key)] = value
        return None
    stem, _, leaf = key.rpartition('.')
    for hf, _, mm, _ in _PLAIN_PARTS:
        if stem == hf and leaf in ('weight', 'bias'):
            out[f'{mm}.{leaf}'] = value
            return None
    raise KeyError(key)


def _convert_tf_key(key: str, value: torch.Tensor,
                    out: Dict) -> Optional[Tuple[int, int]]:
    match = _TF_BLOCK.match(key)
    if match:
        g, i, part, leaf = match.groups()
        for _, tf, blocks, name in _BLOCK_PARTS:
            if part == tf:
                if leaf == 'kernel':
                    value = value.t()
                out[('block', int(g), int(i), blocks, name,
                     _TF_LEAF[leaf])] = value
                return int(g), int(i)
        raise KeyError(key)
    if key == 'cls/predictions/output_bias':
        out['mlm_head.bias'] = value
        return None
    for _, tf, mm, kind in _PLAIN_PARTS:
        if kind == 'embedding' and key == tf:
            out[f'{mm}.weight'] = value
            return None
        stem, _, leaf = key.rpartition('/')
        if stem != tf or leaf not in _TF_LEAF:
            continue
        if kind == 'linear' and leaf in ('kernel', 'bias'):
            out[f'{mm}.{_TF_LEAF[leaf]}'] = (
                value.t() if leaf == 'kernel' else value)
            return None
        if kind == 'norm' and leaf in ('gamma', 'beta'):
            out[f'{mm}.{_TF_LEAF[leaf]}'] = value
            return None
        if kind == 'fc' and leaf in ('output_weights', 'output_bias'):
            out[f'{mm}.{_TF_LEAF[leaf]}'] = value
            return None
    raise KeyError(key)


def convert_albert(state_dict: Dict[str, Any],
                   layout: str = 'auto',
                   vocab_size: Optional[int] = None) -> AlbertCheckpoint:
    """Map an ALBERT state dict to mmssl's keys.

    Args:
        state_dict (dict): HuggingFace keys -> tensors, or TF variable
            names -> numpy arrays (or tensors).
        layout (str): ``'hf'``, ``'tf'`` or ``'auto'`` (from the keys).
        vocab_size (int, optional): The vocabulary of the tokenizer that
            will feed the model; a different number of word-embedding rows
            is an error.

    Returns:
        AlbertCheckpoint: the converted weights (new float32 tensors), the
        sizes read from them, and the layout.

    Raises:
        ConversionError: unknown or missing keys (named), untied decoder
            weights, a vocabulary-size mismatch.
    """
    if layout == 'auto':
        layout = detect_albert_layout(state_dict)
    if layout not in ('hf', 'tf'):
        raise ConversionError(f"layout must be 'hf', 'tf' or 'auto', got "
                              f'{layout!r}')
    raw: Dict = {}
    unknown, blocks = [], set()
    for key, value in state_dict.items():
        if layout == 'hf':
            name = key[len('albert.'):] if key.startswith('albert.') else key
            if name in _HF_SKIP:
                continue
            convert = _convert_hf_key
        else:
            name = key[len('module/'):] if key.startswith('module/') else key
            if _TF_SKIP.search(name):
                continue
            convert = _convert_tf_key
        try:
            gi = convert(name, _tensor(value, key), raw)
        except KeyError:
            unknown.append(key)
            continue
        if gi is not None:
            blocks.add(gi)
    source = ('HuggingFace ALBERT'
              if layout == 'hf' else 'google-research/albert TF')
    if unknown:
        raise ConversionError(f'{len(unknown)} keys are not in the {source} '
                              f'layout: {name_list(unknown)}')
    return _assemble(raw, blocks, layout, source, vocab_size)


def _assemble(raw: Dict, blocks: set, layout: str, source: str,
              vocab_size: Optional[int]) -> AlbertCheckpoint:
    word_key = 'backbone.embeddings.word_embeddings.weight'
    required = [word_key] + [
        f'backbone.embeddings.{n}'
        for n in ('position_embeddings.weight', 'token_type_embeddings.weight',
                  'norm.weight', 'norm.bias')
    ]
    missing = [k for k in required if k not in raw]
    if not blocks:
        missing.append('encoder blocks (group 0, inner block 0)')
    if missing:
        raise ConversionError(f'the {source} checkpoint lacks '
                              f'{name_list(missing)}')
    groups = 1 + max(g for g, _ in blocks)
    inner = 1 + max(i for _, i in blocks)
    out: 'OrderedDict' = OrderedDict()
    absent = []
    for g in range(groups):
        for i in range(inner):
            for _, _, part_blocks, name in _BLOCK_PARTS:
                for leaf in ('weight', 'bias'):
                    entry = raw.pop(('block', g, i, part_blocks, name, leaf),
                                    None)
                    if entry is None:
                        absent.append(f'group {g} inner block {i} '
                                      f'{part_blocks}.{name}.{leaf}')
                    else:
                        out[f'backbone.{part_blocks}.{g * inner + i}.'
                            f'{name}.{leaf}'] = entry
    if absent:
        raise ConversionError(f'the {source} checkpoint lacks '
                              f'{name_list(absent)}')
    word = raw[word_key]
    for key, value in list(raw.items()):
        if isinstance(key, tuple) and key[0] == 'tied':
            if key[1].endswith('weight'):
                ref, target = word, 'the word embedding'
            else:
                ref, target = raw.get('mlm_head.bias'), 'predictions.bias'
            if ref is None or ref.shape != value.shape or not torch.equal(
                    ref, value):
                raise ConversionError(
                    f'{key[1]!r} is not tied to {target}; mmssl ties the MLM '
                    'decoder to the word embedding and cannot load an '
                    'untied one')
            del raw[key]
    out.update((k, raw[k]) for k in sorted(raw))
    if vocab_size is not None and word.shape[0] != vocab_size:
        raise ConversionError(
            f'vocabulary size mismatch: the checkpoint\'s word embedding has '
            f'{word.shape[0]} rows, but vocab_size is {vocab_size}; use the '
            "checkpoint's own SentencePiece model (or set vocab_size="
            f'{word.shape[0]})')
    fc1 = out['backbone.ffn_blocks.0.fc1.weight']
    sizes = dict(
        vocab_size=word.shape[0],
        embedding_size=word.shape[1],
        hidden_size=fc1.shape[1],
        ffn_dim=fc1.shape[0],
        num_hidden_groups=groups,
        inner_group_num=inner,
        max_position=out['backbone.embeddings.position_embeddings.weight'].
        shape[0],
        type_vocab_size=out['backbone.embeddings.token_type_embeddings.weight']
        .shape[0],
        with_pooler='backbone.pooler.weight' in out,
        projection='backbone.projection.weight' in out)
    return AlbertCheckpoint(out, sizes, layout)


def encoder_config_from_json(config: Dict[str, Any],
                             sizes: Optional[Dict] = None) -> Dict[str, Any]:
    """``mmssl.AlbertEncoder`` arguments from an ALBERT json config.

    Args:
        config (dict): HuggingFace ``config.json`` (has ``model_type``) or
            TF ``albert_config.json``. TF's ``'gelu'`` is the tanh
            approximation (``'gelu_new'``).
        sizes (dict, optional): :attr:`AlbertCheckpoint.sizes`, checked
            against the config.

    Returns:
        dict: ``dict(type='mmssl.AlbertEncoder', ...)``.
    """
    is_hf = 'model_type' in config
    keys = dict(
        vocab_size='vocab_size',
        embedding_size='embedding_size',
        hidden_size='hidden_size',
        num_layers='num_hidden_layers',
        num_heads='num_attention_heads',
        ffn_dim='intermediate_size',
        num_hidden_groups='num_hidden_groups',
        inner_group_num='inner_group_num',
        max_position='max_position_embeddings',
        type_vocab_size='type_vocab_size')
    missing = [v for v in keys.values() if v not in config]
    if missing:
        raise ConversionError(f'the ALBERT config lacks {missing}')
    cfg = dict(type='mmssl.AlbertEncoder', arch='base', share='all')
    cfg.update({k: int(config[v]) for k, v in keys.items()})
    act = config.get('hidden_act', 'gelu_new')
    cfg['act'] = 'gelu_new' if (act == 'gelu' and not is_hf) else act
    cfg['dropout'] = float(config.get('hidden_dropout_prob', 0.))
    cfg['attn_dropout'] = float(config.get('attention_probs_dropout_prob', 0.))
    if sizes:
        for key in ('vocab_size', 'embedding_size', 'hidden_size', 'ffn_dim',
                    'num_hidden_groups', 'inner_group_num', 'max_position',
                    'type_vocab_size'):
            if sizes[key] != cfg[key]:
                raise ConversionError(
                    f'the config says {key}={cfg[key]} but the weights have '
                    f'{sizes[key]}; use the config.json of this checkpoint')
        cfg['with_pooler'] = sizes['with_pooler']
        if sizes['projection'] and cfg['embedding_size'] == cfg['hidden_size']:
            cfg['projection'] = True
    return cfg


def albert_to_tf_names(state_dict: Dict[str, torch.Tensor],
                       inner_group_num: int = 1) -> Dict[str, np.ndarray]:
    """The inverse of the TF conversion: mmssl keys -> TF names (numpy).

    Only for all-shared encoders (``share='all'``), whose block ``k`` is
    group ``k // inner_group_num``, inner block ``k % inner_group_num``.
    """
    plain = {}
    for _, tf, mm, kind in _PLAIN_PARTS:
        if not tf:
            tf = ''
        if kind == 'embedding':
            plain[f'{mm}.weight'] = (tf, False)
        elif kind == 'linear':
            plain[f'{mm}.weight'] = (f'{tf}/kernel', True)
            plain[f'{mm}.bias'] = (f'{tf}/bias', False)
        elif kind == 'norm':
            plain[f'{mm}.weight'] = (f'{tf}/gamma', False)
            plain[f'{mm}.bias'] = (f'{tf}/beta', False)
        else:
            base = f'{tf}/' if tf else ''
            plain[f'{mm}.weight'] = (f'{base}output_weights', False)
            plain[f'{mm}.bias'] = (f'{base}output_bias', False)
    plain['mlm_head.bias'] = ('cls/predictions/output_bias', False)
    block = re.compile(r'^backbone\.(attn_blocks|ffn_blocks)\.(\d+)\.(\w+)\.'
                       r'(weight|bias)$')
    out = {}
    for key, value in state_dict.items():
        array = value.detach().cpu().numpy()
        match = block.match(key)
        if match:
            blocks, k, name, leaf = match.groups()
            g, i = divmod(int(k), inner_group_num)
            tf = next(t for _, t, b, n in _BLOCK_PARTS
                      if b == blocks and n == name)
            is_norm = name == 'norm'
            leaf_tf = ({
                'weight': 'gamma',
                'bias': 'beta'
            }[leaf] if is_norm else {
                'weight': 'kernel',
                'bias': 'bias'
            }[leaf])
            if leaf_tf == 'kernel':
                array = array.T
            out[f'bert/encoder/transformer/group_{g}/inner_group_{i}/{tf}/'
                f'{leaf_tf}'] = np.ascontiguousarray(array)
            continue
        if key not in plain:
            raise ConversionError(f'{key!r} has no TF name')
        name, transpose = plain[key]
        out[name] = np.ascontiguousarray(array.T if transpose else array)
    return out


def load_albert_state(model: torch.nn.Module,
                      state_dict: Dict[str, torch.Tensor]) -> None:
    """Load converted weights into an mmssl ALBERT model, strictly.

    ``model`` is an ``AlbertPretrainer`` / ``TextClassifier`` (keys as
    converted) or a bare ``AlbertEncoder`` (the ``backbone.`` keys only).

    Raises:
        ConversionError: a vocabulary-size mismatch, other shape
            mismatches, missing or unexpected keys (each named).
    """
    if not any(k.startswith('backbone.') for k in model.state_dict()):
        state_dict = {
            k[len('backbone.'):]: v
            for k, v in state_dict.items() if k.startswith('backbone.')
        }
    own = model.state_dict()
    word = [k for k in own if k.endswith('embeddings.word_embeddings.weight')]
    for key in word:
        if key in state_dict and state_dict[key].shape != own[key].shape:
            raise ConversionError(
                f'vocabulary size mismatch: the checkpoint has '
                f'{state_dict[key].shape[0]} word embeddings, the model '
                f'vocab_size={own[key].shape[0]}; set the model\'s '
                'vocab_size to the checkpoint\'s (and use its tokenizer)')
    bad = [
        f'{k!r} {tuple(v.shape)} vs model {tuple(own[k].shape)}'
        for k, v in state_dict.items() if k in own and v.shape != own[k].shape
    ]
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    if bad or missing or unexpected:
        parts = []
        if bad:
            parts.append(f'shape mismatches: {name_list(bad, quote=False)}')
        if missing:
            parts.append(f'missing keys: {name_list(missing)}')
        if unexpected:
            parts.append(f'unexpected keys: {name_list(unexpected)}')
        raise ConversionError(
            'the converted ALBERT weights do not fit the model (' +
            '; '.join(parts) + '); build the model with the sizes of '
            'the checkpoint (encoder_config_from_json)')
    model.load_state_dict(state_dict, strict=True)
