# Copyright (c) mmssl contributors. All rights reserved.
"""Building, reusing and rebuilding the embedded speech corpus."""
import inspect
import os.path as osp

from mmssl.datasets.embedded_speech import (AUDIO_RATE, ensure_embedded_speech,
                                            make_embedded_speech)

SMALL = dict(num_train=2, num_val=1, num_test=1)


def _stamp(result):
    return {s: osp.getmtime(p) for s, p in result['files'].items()}


def test_build_reuse_force_and_other_parameters(tmp_path):
    root = str(tmp_path / 'speech')
    first = make_embedded_speech(root, workers=1, **SMALL)
    assert first['generated']
    assert 0 <= first['build_seconds'] < 600
    for split, size in first['sizes'].items():
        with open(first['files'][split]) as f:
            rows = f.read().splitlines()[1:]
        samples = sum(int(r.split('\t')[1]) for r in rows)
        assert size['clips'] == len(rows) == SMALL[f'num_{split}']
        assert size['seconds'] == round(samples / AUDIO_RATE, 2) > 0
    # the same parameters: reused, not rewritten
    again = make_embedded_speech(root, workers=1, **SMALL)
    assert not again['generated'] and _stamp(again) == _stamp(first)
    assert again['sizes'] == first['sizes']
    # ensure without arguments takes any complete corpus of this version
    kept = ensure_embedded_speech(root)
    assert not kept['generated'] and kept['sizes'] == first['sizes']
    # force rebuilds the same corpus (byte-identical manifests)
    forced = make_embedded_speech(root, force=True, workers=1, **SMALL)
    assert forced['generated'] and forced['sizes'] == first['sizes']
    assert forced['created_at'] > first['created_at']
    # another seed is another corpus
    other = make_embedded_speech(root, seed=1, workers=1, **SMALL)
    assert other['generated'] and other['params']['seed'] == 1
    assert other['sizes']['train']['tsv_sha1'] != first['sizes']['train'][
        'tsv_sha1']


def test_defaults():
    params = inspect.signature(make_embedded_speech).parameters
    assert {
        k: params[k].default
        for k in ('root', 'seed', 'num_train', 'num_val', 'num_test', 'force',
                  'workers')
    } == dict(
        root='data/embedded_speech',
        seed=0,
        num_train=480,
        num_val=64,
        num_test=64,
        force=False,
        workers=None)
