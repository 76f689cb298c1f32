# Copyright (c) mmssl contributors. All rights reserved.
"""ALBERT checkpoint conversion: HuggingFace and TF layouts -> mmssl.

The HuggingFace layout is checked against an independent float64 numpy
forward written from ``transformers``' ``modeling_albert`` on synthetic
weights in its real key layout, and against ``transformers`` itself when it
is installed (mmssl's requirements leave it out).
"""
import numpy as np
import pytest
import torch

from mmssl.converters.albert import (albert_to_tf_names, convert_albert,
                                     detect_albert_layout,
                                     encoder_config_from_json,
                                     load_albert_state)
from mmssl.converters.checkpoint import ConversionError
from mmssl.registry import MODELS

V, E, H, F, G, I, L, A, MAXPOS = 100, 16, 32, 64, 2, 2, 4, 4, 64

HF_CONFIG = dict(
    model_type='albert',
    vocab_size=V,
    embedding_size=E,
    hidden_size=H,
    num_hidden_layers=L,
    num_attention_heads=A,
    intermediate_size=F,
    num_hidden_groups=G,
    inner_group_num=I,
    max_position_embeddings=MAXPOS,
    type_vocab_size=2,
    hidden_act='gelu_new',
    hidden_dropout_prob=0.,
    attention_probs_dropout_prob=0.)


def hf_state(seed=0):
    """Random weights with the keys of ``AlbertForPreTraining``."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g) * 0.2

    sd = {
        'albert.embeddings.word_embeddings.weight': r(V, E),
        'albert.embeddings.position_embeddings.weight': r(MAXPOS, E),
        'albert.embeddings.token_type_embeddings.weight': r(2, E),
        'albert.embeddings.LayerNorm.weight': 1 + r(E),
        'albert.embeddings.LayerNorm.bias': r(E),
        'albert.encoder.embedding_hidden_mapping_in.weight': r(H, E),
        'albert.encoder.embedding_hidden_mapping_in.bias': r(H),
        'albert.pooler.weight': r(H, H),
        'albert.pooler.bias': r(H),
        'predictions.bias': r(V),
        'predictions.dense.weight': r(E, H),
        'predictions.dense.bias': r(E),
        'predictions.LayerNorm.weight': 1 + r(E),
        'predictions.LayerNorm.bias': r(E),
        'sop_classifier.classifier.weight': r(2, H),
        'sop_classifier.classifier.bias': r(2),
    }
    sd['predictions.decoder.weight'] = sd[
        'albert.embeddings.word_embeddings.weight']
    sd['predictions.decoder.bias'] = sd['predictions.bias']
    shapes = {
        'attention.query': (H, H),
        'attention.key': (H, H),
        'attention.value': (H, H),
        'attention.dense': (H, H),
        'ffn': (F, H),
        'ffn_output': (H, F)
    }
    for gi in range(G):
        for ii in range(I):
            pre = (f'albert.encoder.albert_layer_groups.{gi}.'
                   f'albert_layers.{ii}.')
            for name, shape in shapes.items():
                sd[pre + name + '.weight'] = r(*shape)
                sd[pre + name + '.bias'] = r(shape[0])
            for name in ('attention.LayerNorm', 'full_layer_layer_norm'):
                sd[pre + name + '.weight'] = 1 + r(H)
                sd[pre + name + '.bias'] = r(H)
    return sd


def reference_forward(sd, ids, types, mask):
    """float64 numpy ALBERT (HuggingFace semantics) on HF keys."""
    w = {k: v.double().numpy() for k, v in sd.items()}
    p = 'albert.'

    def ln(x, name, eps=1e-12):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu)**2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * w[name + '.weight'] + w[name +
                                                                       '.bias']

    def lin(x, name):
        return x @ w[name + '.weight'].T + w[name + '.bias']

    def gelu_new(x):
        return 0.5 * x * (1 +
                          np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))

    t = ids.shape[1]
    x = (
        w[p + 'embeddings.word_embeddings.weight'][ids] +
        w[p + 'embeddings.token_type_embeddings.weight'][types] +
        w[p + 'embeddings.position_embeddings.weight'][:t][None])
    x = ln(x, p + 'embeddings.LayerNorm')
    x = lin(x, p + 'encoder.embedding_hidden_mapping_in')
    bias = np.where(mask[:, None, None, :] > 0, 0., -1e9)
    for layer in range(L):
        group = int(layer / (L / G))
        for inner in range(I):
            q = (f'{p}encoder.albert_layer_groups.{group}.albert_layers.'
                 f'{inner}.')

            def heads(y):
                return y.reshape(y.shape[0], t, A,
                                 H // A).transpose(0, 2, 1, 3)

            qh, kh, vh = (
                heads(lin(x, q + f'attention.{n}'))
                for n in ('query', 'key', 'value'))
            s = qh @ kh.transpose(0, 1, 3, 2) / np.sqrt(H // A) + bias
            s = np.exp(s - s.max(-1, keepdims=True))
            s = s / s.sum(-1, keepdims=True)
            ctx = (s @ vh).transpose(0, 2, 1, 3).reshape(x.shape)
            x = ln(x + lin(ctx, q + 'attention.dense'),
                   q + 'attention.LayerNorm')
            f = lin(gelu_new(lin(x, q + 'ffn')), q + 'ffn_output')
            x = ln(x + f, q + 'full_layer_layer_norm')
    pooled = np.tanh(lin(x[:, 0], p + 'pooler'))
    h = ln(gelu_new(lin(x, 'predictions.dense')), 'predictions.LayerNorm')
    mlm = h @ w[p +
                'embeddings.word_embeddings.weight'].T + w['predictions.bias']
    sop = lin(pooled, 'sop_classifier.classifier')
    return x, pooled, mlm, sop


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, V, (3, 12), generator=g)
    types = torch.zeros_like(ids)
    types[:, 6:] = 1
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0
    return ids, types, mask


def _mmssl_outputs(converted):
    backbone = encoder_config_from_json(HF_CONFIG, converted.sizes)
    model = MODELS.build(
        dict(
            type='mmssl.AlbertPretrainer',
            backbone=backbone,
            data_preprocessor=None)).eval()
    load_albert_state(model, converted.state_dict)
    ids, types, mask = _inputs()
    with torch.no_grad():
        seq, pooled = model.backbone(ids, types, mask)
        return seq, pooled, model.mlm_head(seq), model.sop_head(pooled)


def _close(ours, ref, mask):
    real = mask.bool()
    for name, a, b in zip(('sequence', 'pooled', 'mlm', 'sop'), ours, ref):
        b = torch.from_numpy(np.asarray(b)).float()
        if a.dim() == 3:  # padded positions are not compared
            a, b = a[real], b[real]
        assert torch.allclose(
            a, b, atol=1e-5, rtol=1e-5), (name, (a - b).abs().max())


def test_hf_layout_matches_an_independent_forward():
    sd = hf_state()
    converted = convert_albert(sd)
    assert converted.layout == 'hf'
    assert converted.sizes == dict(
        vocab_size=V,
        embedding_size=E,
        hidden_size=H,
        ffn_dim=F,
        num_hidden_groups=G,
        inner_group_num=I,
        max_position=MAXPOS,
        type_vocab_size=2,
        with_pooler=True,
        projection=True)
    ids, types, mask = _inputs()
    ref = reference_forward(sd, ids.numpy(), types.numpy(), mask.numpy())
    _close(_mmssl_outputs(converted), ref, mask)


def hf_to_tf_name(key):
    """HF -> google-research/albert TF name, written independently of the
    converter (after transformers' old ``load_tf_weights_in_albert``)."""
    key = key.replace('albert.', 'bert/',
                      1) if key.startswith('albert.') else key
    rules = [
        ('bert/embeddings.LayerNorm.weight',
         'bert/embeddings/LayerNorm/gamma'),
        ('bert/embeddings.LayerNorm.bias', 'bert/embeddings/LayerNorm/beta'),
        ('bert/pooler.', 'bert/pooler/dense.'),
        ('bert/encoder.embedding_hidden_mapping_in.',
         'bert/encoder/embedding_hidden_mapping_in.'),
        ('predictions.dense.', 'cls/predictions/transform/dense.'),
        ('predictions.LayerNorm.weight',
         'cls/predictions/transform/LayerNorm/gamma'),
        ('predictions.LayerNorm.bias',
         'cls/predictions/transform/LayerNorm/beta'),
        ('predictions.bias', 'cls/predictions/output_bias'),
        ('sop_classifier.classifier.weight',
         'cls/seq_relationship/output_weights'),
        ('sop_classifier.classifier.bias', 'cls/seq_relationship/output_bias'),
    ]
    for old, new in rules:
        if key.startswith(old):
            key = new + key[len(old):]
            break
    if key.startswith('bert/embeddings.'):
        return 'bert/embeddings/' + key[len('bert/embeddings.'):].replace(
            '.weight', '')
    if key.startswith('bert/encoder.albert_layer_groups.'):
        parts = key.split('.')
        g, i, rest = parts[2], parts[4], '.'.join(parts[5:])
        sub = {
            'attention.query': 'attention_1/self/query',
            'attention.key': 'attention_1/self/key',
            'attention.value': 'attention_1/self/value',
            'attention.dense': 'attention_1/output/dense',
            'attention.LayerNorm': 'LayerNorm',
            'ffn': 'ffn_1/intermediate/dense',
            'ffn_output': 'ffn_1/intermediate/output/dense',
            'full_layer_layer_norm': 'LayerNorm_1'
        }
        stem, leaf = rest.rsplit('.', 1)
        norm = 'LayerNorm' in stem or 'layer_norm' in stem
        leaf = {
            'weight': 'gamma' if norm else 'kernel',
            'bias': 'beta' if norm else 'bias'
        }[leaf]
        key = (f'bert/encoder/transformer/group_{g}/inner_group_{i}/'
               f'{sub[stem]}/{leaf}')
    return key.replace('.weight', '/kernel').replace('.bias', '/bias')


def tf_state(seed=0):
    """The weights of :func:`hf_state` under TF names, as numpy arrays."""
    out = {'global_step': np.array(7)}
    for key, value in hf_state(seed).items():
        if key.startswith('predictions.decoder'):
            continue
        name = hf_to_tf_name(key)
        array = value.numpy()
        if name.endswith('/kernel'):
            array = array.T  # TF kernels are [in, out]
        out[name] = array
        out[name + '/adam_m'] = np.zeros_like(array)  # optimizer slots
    return out


def test_tf_layout_gives_the_same_model():
    tf = tf_state()
    assert 'bert/encoder/transformer/group_1/inner_group_1/attention_1/' \
           'self/query/kernel' in tf
    converted = convert_albert(tf)
    assert converted.layout == 'tf'
    from_hf = convert_albert(hf_state())
    assert list(converted.state_dict) == list(from_hf.state_dict)
    for key, value in from_hf.state_dict.items():
        assert torch.equal(converted.state_dict[key], value), key
    ids, types, mask = _inputs()
    ref = reference_forward(hf_state(), ids.numpy(), types.numpy(),
                            mask.numpy())
    _close(_mmssl_outputs(converted), ref, mask)


def test_tf_names_round_trip():
    converted = convert_albert(tf_state())
    back = albert_to_tf_names(converted.state_dict, inner_group_num=I)
    tf = {
        k: v
        for k, v in tf_state().items()
        if k != 'global_step' and not k.endswith('/adam_m')
    }
    assert set(back) == set(tf)
    for key in tf:
        np.testing.assert_array_equal(back[key], tf[key], err_msg=key)


def test_errors_name_the_keys_and_sizes():
    sd = hf_state()
    sd['albert.encoder.extra.weight'] = torch.zeros(1)
    with pytest.raises(ConversionError, match='albert.encoder.extra.weight'):
        convert_albert(sd)
    sd = hf_state()
    del sd['albert.encoder.albert_layer_groups.1.albert_layers.0.ffn.bias']
    with pytest.raises(
            ConversionError,
            match='group 1 inner block 0 ffn_blocks.fc1.bias'):
        convert_albert(sd)
    sd = hf_state()
    del sd['albert.embeddings.LayerNorm.weight']
    with pytest.raises(ConversionError, match='embeddings.norm.weight'):
        convert_albert(sd)
    with pytest.raises(ConversionError, match='vocab_size is 120'):
        convert_albert(hf_state(), vocab_size=120)
    sd = hf_state()
    sd['predictions.decoder.weight'] = sd['predictions.decoder.weight'] + 1
    with pytest.raises(ConversionError, match='not tied'):
        convert_albert(sd)
    tf = tf_state()
    tf['bert/encoder/transformer/group_0/inner_group_0/attention_9/k'] = 0
    with pytest.raises(ConversionError, match='attention_9'):
        convert_albert(tf)
    # loading into a model of another vocabulary
    model = MODELS.build(
        dict(
            type='mmssl.AlbertPretrainer',
            data_preprocessor=None,
            backbone=dict(
                encoder_config_from_json(HF_CONFIG), vocab_size=V + 5)))
    with pytest.raises(ConversionError, match='vocabulary size mismatch'):
        load_albert_state(model, convert_albert(hf_state()).state_dict)
    with pytest.raises(ConversionError, match='num_hidden_groups'):
        encoder_config_from_json(
            dict(HF_CONFIG, num_hidden_groups=1),
            convert_albert(hf_state()).sizes)


@pytest.mark.parametrize('keys,layout', [
    (['a/b', 'c', 'd'], 'hf'),
    (['a/b', 'c/d', 'e', 'f'], 'hf'),
    (['a/b', 'c/d', 'e'], 'tf'),
])
def test_layout_is_that_of_most_keys(keys, layout):
    assert detect_albert_layout(dict.fromkeys(keys)) == layout
    with pytest.raises(ConversionError, match='no weights'):
        detect_albert_layout({})


@pytest.mark.parametrize('layout,count', [('hf', 10), ('hf', 8), ('tf', 9)])
def test_unknown_keys_are_listed_up_to_8(layout, count):
    sd = hf_state() if layout == 'hf' else tf_state()
    sep = '.' if layout == 'hf' else '/'
    extra = [f'albert{sep}extra{i}{sep}weight' for i in range(count)]
    for key in extra:
        sd[key] = np.zeros(1) if layout == 'tf' else torch.zeros(1)
    with pytest.raises(ConversionError) as err:
        convert_albert(sd)
    source = ('HuggingFace ALBERT'
              if layout == 'hf' else 'google-research/albert TF')
    shown = ', '.join(repr(k) for k in extra[:8])
    more = f' (and {count - 8} more)' if count > 8 else ''
    assert str(err.value) == (f'{count} keys are not in the {source} '
                              f'layout: {shown}{more}')


@pytest.mark.parametrize('key', [
    'bert/embeddings/LayerNorm/kernel',
    'bert/pooler/dense/gamma',
    'bert/embeddings/LayerNorm/output_bias',
    'cls/seq_relationship/bias',
])
def test_tf_leaf_must_fit_its_scope(key):
    """A LayerNorm holds gamma / beta, a dense layer kernel / bias and an
    output layer output_weights / output_bias; any other leaf is unknown."""
    tf = tf_state()
    tf[key] = np.zeros(3, dtype=np.float32)
    with pytest.raises(ConversionError, match=f'1 keys .*{key}'):
        convert_albert(tf)


def test_converted_tensors_are_detached():
    sd = {k: v.clone().requires_grad_() for k, v in hf_state().items()}
    converted = convert_albert(sd).state_dict
    assert not any(v.requires_grad for v in converted.values())


def test_vocab_size_is_the_word_embedding_rows():
    assert convert_albert(hf_state(), vocab_size=V).sizes['vocab_size'] == V


def test_decoder_bias_without_mlm_bias_is_untied():
    sd = hf_state()
    del sd['predictions.bias']
    with pytest.raises(
            ConversionError,
            match="'predictions.decoder.bias' is not tied to "
            'predictions.bias'):
        convert_albert(sd)


@pytest.mark.parametrize('hf,act,expected', [
    (True, 'gelu', 'gelu'),
    (True, 'gelu_new', 'gelu_new'),
    (False, 'gelu', 'gelu_new'),
    (False, 'relu', 'relu'),
])
def test_activation_of_hf_and_tf_configs(hf, act, expected):
    """TF ALBERT's ``gelu`` is the tanh approximation; HuggingFace names
    that one ``gelu_new`` and means the exact one by ``gelu``."""
    config = dict(HF_CONFIG, hidden_act=act)
    if not hf:
        del config['model_type']
    assert encoder_config_from_json(config)['act'] == expected


def _pretrainer(**backbone):
    return MODELS.build(
        dict(
            type='mmssl.AlbertPretrainer',
            data_preprocessor=None,
            backbone=dict(encoder_config_from_json(HF_CONFIG), **backbone)))


@pytest.mark.parametrize('change,message', [
    ('drop', "missing keys: 'backbone.pooler.bias'"),
    ('add', "unexpected keys: 'backbone.extra'"),
    ('shape', "shape mismatches: 'backbone.pooler.bias' (3,) vs model (32,)"),
])
def test_load_names_what_does_not_fit(change, message):
    """Each kind of misfit alone is refused, named."""
    sd = dict(convert_albert(hf_state()).state_dict)
    if change == 'drop':
        del sd['backbone.pooler.bias']
    elif change == 'add':
        sd['backbone.extra'] = torch.zeros(1)
    else:
        sd['backbone.pooler.bias'] = torch.zeros(3)
    with pytest.raises(ConversionError) as err:
        load_albert_state(_pretrainer(), sd)
    assert f'do not fit the model ({message})' in str(err.value)


def test_config_defaults_and_projection():
    """Dropout defaults to 0 when a config leaves it out; an E -> H
    projection is built when the weights have one, also for E == H."""
    config = {
        k: v
        for k, v in HF_CONFIG.items() if not k.endswith('dropout_prob')
    }
    cfg = encoder_config_from_json(config)
    assert (cfg['dropout'], cfg['attn_dropout']) == (0., 0.)
    sizes = convert_albert(hf_state()).sizes
    assert sizes['projection'] and E != H
    assert 'projection' not in encoder_config_from_json(HF_CONFIG, sizes)
    square = dict(HF_CONFIG, embedding_size=H)
    cfg = encoder_config_from_json(square, dict(sizes, embedding_size=H))
    assert cfg['projection'] is True
    sizes['projection'] = False
    assert 'projection' not in encoder_config_from_json(
        square, dict(sizes, embedding_size=H))


def test_tf_names_of_parameters_one_block_per_group():
    """``inner_group_num`` defaults to 1 (block k is group k); tensors that
    require a gradient (a model's parameters) are converted too."""
    sd = {
        k: v.clone().requires_grad_()
        for k, v in convert_albert(hf_state()).state_dict.items()
    }
    names = albert_to_tf_names(sd)
    assert 'bert/encoder/transformer/group_3/inner_group_0/attention_1/' \
        'self/query/kernel' in names
    assert not any('inner_group_1' in k for k in names)


def test_tool_converts_files(tmp_path):
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'albert_to_mmssl', 'tools/model_converters/albert_to_mmssl.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    src = tmp_path / 'pytorch_model.bin'
    torch.save(hf_state(), src)
    dst = tmp_path / 'albert_mmssl.pth'
    assert tool.main([str(src), str(dst)]) == 0
    ckpt = torch.load(dst, weights_only=True)
    assert ckpt['meta']['source_layout'] == 'hf'
    ref = convert_albert(hf_state()).state_dict
    assert set(ckpt['state_dict']) == set(ref)
    npz = tmp_path / 'albert_tf.npz'
    np.savez(npz, **tf_state())
    assert tool.main([str(npz), str(tmp_path / 'b.pth')]) == 0
    assert tool.main([str(tmp_path / 'missing.bin'),
                      str(tmp_path / 'c.pth')]) == 2
    assert tool.main([str(src),
                      str(tmp_path / 'd.pth'), '--vocab-size', '7']) == 2


def test_transformers_parity():
    transformers = pytest.importorskip('transformers')
    cfg = transformers.AlbertConfig(
        **{
            k: v
            for k, v in HF_CONFIG.items() if k != 'model_type'
        },
        classifier_dropout_prob=0.)
    torch.manual_seed(0)
    hf = transformers.AlbertForPreTraining(cfg).eval()
    converted = convert_albert(hf.state_dict())
    ids, types, mask = _inputs()
    with torch.no_grad():
        out = hf(
            input_ids=ids,
            token_type_ids=types,
            attention_mask=mask,
            output_hidden_states=True)
        base = hf.albert(
            input_ids=ids, token_type_ids=types, attention_mask=mask)
    ref = (base.last_hidden_state, base.pooler_output, out.prediction_logits,
           out.sop_logits)
    _close(_mmssl_outputs(converted), [r.numpy() for r in ref], mask)
