# Copyright (c) mmssl contributors. All rights reserved.
"""CLIP wrapper: OpenAI token ids, text path on embeddings, checkpoints."""
import copy
import os
import pickle
import struct
import zipfile

import pytest
import torch
import torch.nn.functional as F

from mmssl.models.clip import (EOT_TOKEN, SOT_TOKEN, CLIPPretrainer,
                               build_clip, clip_contrastive_loss,
                               encode_text_embeddings, load_clip_checkpoint,
                               tokenize, zero_shot_text_features)

TINY = dict(
    arch='tiny-rn',
    embed_dim=32,
    vision=dict(width=8, image_size=32),
    text=dict(width=32, heads=2, layers=1, context_length=16))


def test_tokenizer_gives_openai_ids():
    # ids of OpenAI's CLIP BPE vocabulary (bpe_simple_vocab_16e6)
    ids = tokenize('a photo of a cat.')
    assert ids.shape == (1, 77) and ids.dtype == torch.int64
    assert ids[0, :8].tolist() == [
        SOT_TOKEN, 320, 1125, 539, 320, 2368, 269, EOT_TOKEN
    ]
    assert (ids[0, 8:] == 0).all()
    assert (SOT_TOKEN, EOT_TOKEN) == (49406, 49407)
    assert tokenize('a diagram',
                    8)[0].tolist() == [49406, 320, 22697, 49407, 0, 0, 0, 0]
    # lower-cased; over-long texts are cut and end with end-of-text
    assert tokenize('A DOG')[0, :4].tolist() == [49406, 320, 1929, 49407]
    cut = tokenize('a photo of a cat ' * 10, 6)[0]
    assert cut.tolist() == [49406, 320, 1125, 539, 320, 49407]


def test_text_on_embeddings_equals_encode_text():
    torch.manual_seed(0)
    clip = build_clip(**TINY).eval()
    ids = tokenize(['a photo of a circle.', 'a red star.'], 16)
    emb = clip.token_embedding(ids)
    with torch.no_grad():
        ref = clip.encode_text(ids)
        out = encode_text_embeddings(clip, emb, ids)
    torch.testing.assert_close(out, ref)
    assert out.shape == (2, 32)


def test_checkpoint_roundtrip_and_missing_file(tmp_path):
    torch.manual_seed(0)
    model = CLIPPretrainer(
        arch='tiny-rn',
        arch_overrides={
            k: v
            for k, v in TINY.items() if k != 'arch'
        })
    path = tmp_path / 'epoch_1.pth'
    torch.save(dict(state_dict=model.state_dict()), path)
    other = build_clip(**TINY)
    load_clip_checkpoint(other, str(path))
    for k, v in model.clip.state_dict().items():
        torch.testing.assert_close(other.state_dict()[k], v)
    # an OpenAI-style plain state dict (fp16 halves included) loads in fp32
    plain = {
        k: v.half() if v.is_floating_point() else v
        for k, v in model.clip.state_dict().items()
    }
    torch.save(plain, tmp_path / 'openai.pt')
    load_clip_checkpoint(other, str(tmp_path / 'openai.pt'))
    assert other.text_projection.dtype == torch.float32
    with pytest.raises(FileNotFoundError, match='ViT-B-16.pt.*') as err:
        build_clip('ViT-B/16', checkpoint=str(tmp_path / 'ViT-B-16.pt'))
    assert 'openaipublic' in str(err.value)
    # wrong architecture: a clear error
    with pytest.raises(RuntimeError, match='does not fit'):
        load_clip_checkpoint(build_clip('tiny-rn'), str(path))


def test_pretrainer_loss_and_zero_shot():
    from mmpretrain.structures import DataSample
    torch.manual_seed(0)
    model = CLIPPretrainer(
        class_names=['circle', 'star', 'cross'],
        arch_overrides={
            k: v
            for k, v in TINY.items() if k != 'arch'
        })
    imgs = torch.randn(4, 3, 32, 32)
    samples = [DataSample() for _ in range(4)]
    captions = ['a red circle.', 'a star.', 'a cross.', 'a photo of a circle.']
    for s, c in zip(samples, captions):
        s.caption = c
    losses = model(imgs, samples, mode='loss')
    assert losses['loss'].requires_grad and losses['loss'] > 0
    out = model(imgs, samples, mode='predict')
    assert out[0].pred_score.shape == (3, )
    feats = zero_shot_text_features(model.clip, ['circle'],
                                    ['a {}.', 'a photo of a {}.'])
    torch.testing.assert_close(feats.norm(dim=-1), torch.ones(1))
    # symmetric InfoNCE on perfectly aligned pairs is small
    e = F.normalize(torch.eye(4), dim=-1)
    assert clip_contrastive_loss(e, e, torch.tensor(4.6)) < 0.1


def test_openai_archs_are_defined():
    from mmssl.models.clip import CLIP_ARCHS
    assert CLIP_ARCHS['ViT-B/16']['embed_dim'] == 512
    assert CLIP_ARCHS['RN50']['embed_dim'] == 1024
    assert CLIP_ARCHS['RN50']['vision']['layers'] == (3, 4, 6, 3)


def _no_jit_load(monkeypatch):

    def fail(*args, **kwargs):
        raise AssertionError('torch.jit.load must not run on user files')

    monkeypatch.setattr(torch.jit, 'load', fail)


@pytest.mark.parametrize('dtype', [torch.float32, torch.float16])
def test_torchscript_release_loads_without_running_code(
        tmp_path, monkeypatch, dtype):
    """OpenAI releases are TorchScript archives (fp16): their weights are
    read without torch.jit.load and equal what jit.load would give."""
    from mmssl.utils.torchscript_weights import load_torchscript_state_dict
    torch.manual_seed(0)
    model = build_clip(**TINY).eval()
    path = str(tmp_path / 'RN-tiny.pt')
    torch.jit.script(copy.deepcopy(model).to(dtype)).save(path)
    ref = torch.jit.load(path).state_dict()  # the test's own trusted file
    _no_jit_load(monkeypatch)
    weights = load_torchscript_state_dict(path)
    assert list(weights) == list(ref)
    for key, value in ref.items():
        assert weights[key].dtype == value.dtype
        assert torch.equal(weights[key], value), key
    other = build_clip(**TINY)
    load_clip_checkpoint(other, path)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(other.state_dict()[key],
                                   value.to(dtype).to(value.dtype))
        assert other.state_dict()[key].dtype == value.dtype


class _Payload:

    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return (self.func, (self.arg, ))


def _data_pkl(kind, marker):
    write = f'open({str(marker)!r}, "w").write("ran")'
    if kind == 'exec':
        return pickle.dumps(_Payload(exec, write), protocol=2)
    if kind == 'eval':
        return pickle.dumps(_Payload(eval, write), protocol=2)
    if kind == 'os.system':
        return pickle.dumps(_Payload(os.system, f'touch {marker}'), protocol=2)
    # a module object (an allowed __torch__ class) whose state runs code
    code = write.encode()
    return (b'\x80\x02c__torch__\nCLIP\n)\x81}(X\x06\x00\x00\x00visual'
            b'c__builtin__\nexec\nX' + struct.pack('<I', len(code)) + code +
            b'\x85Rub.')


# the global each payload is refused for
_NAMED = {
    'exec': 'builtins.exec',
    'eval': 'builtins.eval',
    'os.system': 'system',  # posix.system
    'in-module': 'builtins.exec'
}


@pytest.mark.parametrize('kind', list(_NAMED))
def test_torchscript_payload_is_refused(tmp_path, monkeypatch, kind):
    """A TorchScript archive whose data.pkl runs code is refused, and no
    code runs (neither the pickle's nor the archive's)."""
    from mmssl.utils import UnsafeCheckpointError
    good = str(tmp_path / 'good.pt')
    torch.jit.script(torch.nn.Linear(2, 2)).save(good)
    marker = tmp_path / 'marker'
    path = str(tmp_path / 'ViT-B-16.pt')
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, 'w') as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith('/data.pkl'):
                data = _data_pkl(kind, marker)
            dst.writestr(info, data)
    _no_jit_load(monkeypatch)
    with pytest.raises(UnsafeCheckpointError) as err:
        load_clip_checkpoint(build_clip(**TINY), path)
    msg = str(err.value)
    assert 'Refusing to load checkpoint' in msg and path in msg
    assert _NAMED[kind] in msg
    assert not marker.exists()


def test_clip_checkpoint_file_errors(tmp_path):
    """Text and truncated files say so, naming the file."""
    from mmssl.utils import CheckpointFileError
    text = tmp_path / 'RN50.pt'
    text.write_text('<html>404 Not Found</html>')
    with pytest.raises(CheckpointFileError, match='is not a checkpoint'):
        load_clip_checkpoint(build_clip(**TINY), str(text))
    full = tmp_path / 'full.pt'
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(full))
    cut = tmp_path / 'cut.pt'
    cut.write_bytes(full.read_bytes()[:200])
    with pytest.raises(CheckpointFileError, match='truncated checkpoint'):
        load_clip_checkpoint(build_clip(**TINY), str(cut))


# ---------------------------------------------------------------- templates
def test_openai_imagenet_templates_match_open_clip():
    """The 80 templates equal open_clip's copy of OpenAI's list, in order."""
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES as oc

    from mmssl.models.clip import OPENAI_IMAGENET_TEMPLATES
    assert len(OPENAI_IMAGENET_TEMPLATES) == 80
    assert list(OPENAI_IMAGENET_TEMPLATES) == [t('{}') for t in oc]


def test_resolve_templates():
    from mmssl.models.clip import OPENAI_IMAGENET_TEMPLATES, resolve_templates
    assert resolve_templates('a photo of a {}.') == ['a photo of a {}.']
    assert resolve_templates('openai_imagenet') == list(
        OPENAI_IMAGENET_TEMPLATES)
    mixed = resolve_templates(['openai_imagenet', '{} texture.'])
    assert len(mixed) == 81 and mixed[-1] == '{} texture.'
    with pytest.raises(ValueError, match="'a photo'.*one"):
        resolve_templates(['a photo'])
    with pytest.raises(ValueError, match='empty'):
        resolve_templates([])


def test_zero_shot_ensemble_is_normalised_mean_of_normalised_features():
    """z_k = normalize(mean_t normalize(f(t_k))), one row per class, '_' in
    a name read as a space."""
    from mmssl.models.clip import OPENAI_IMAGENET_TEMPLATES
    torch.manual_seed(0)
    clip = build_clip(**TINY).eval()
    names = ['circle', 'semi_circle']
    with torch.no_grad():
        z = zero_shot_text_features(
            clip, names, 'openai_imagenet', batch_size=7)
        want = []
        for name in ('circle', 'semi circle'):
            per = torch.stack([
                F.normalize(
                    clip.encode_text(tokenize(t.format(name), 16)), dim=-1)[0]
                for t in OPENAI_IMAGENET_TEMPLATES
            ])
            want.append(F.normalize(per.mean(0), dim=0))
    want = torch.stack(want)
    assert z.shape == (2, 32)
    torch.testing.assert_close(z, want, atol=1e-6, rtol=0)
    # not the single-template feature nor the unnormalised mean
    with torch.no_grad():
        single = F.normalize(
            clip.encode_text(tokenize('a bad photo of a circle.', 16)), dim=-1)
    assert (z[0] - single[0]).norm() > 1e-3


def test_pretrainer_takes_a_template_set():
    torch.manual_seed(0)
    model = CLIPPretrainer(
        class_names=['circle'],
        templates=['openai_imagenet', 'a photo of a {}.'],
        arch_overrides={
            k: v
            for k, v in TINY.items() if k != 'arch'
        })
    assert len(model.templates) == 81
    with pytest.raises(ValueError, match='template'):
        CLIPPretrainer(templates=['no placeholder'])
