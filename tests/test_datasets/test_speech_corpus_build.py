# Copyright (c) mmssl contributors. All rights reserved.
"""Building, reusing and rebuilding the embedded speech corpus."""
import inspect
import json
import os.path as osp
import time

import mmssl.datasets.embedded_speech as speech
from mmssl.datasets.embedded_speech import (AUDIO_RATE, ensure_embedded_speech,
                                            make_embedded_speech)

SMALL = dict(num_train=2, num_val=1, num_test=1)


def _stamp(result):
    return {s: osp.getmtime(p) for s, p in result['files'].items()}


def test_build_reuse_force_and_other_parameters(tmp_path):
    root = str(tmp_path / 'speech')
    first = make_embedded_speech(root, workers=1, **SMALL)
    stamp = _stamp(first)
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
    assert not again['generated'] and _stamp(again) == stamp
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


def test_built_by_another_process_while_waiting(tmp_path, monkeypatch):
    """The check inside the file lock: a process that found no corpus and
    then waited for the lock takes the one another process made meanwhile;
    a forced build takes it only if it was made after the call."""
    root = str(tmp_path / 'speech')
    first = make_embedded_speech(root, workers=1, **SMALL)
    stamp = _stamp(first)
    real_load = speech.load_speech_meta
    calls = []

    def late_load(path, fresh=False):
        calls.append(path)
        if len(calls) == 1:
            return None  # not there yet when first looked at
        meta = real_load(path)
        if fresh:
            meta['created_at'] = time.time() + 60
        return meta

    monkeypatch.setattr(speech, 'load_speech_meta', late_load)
    waited = make_embedded_speech(root, workers=1, **SMALL)
    assert len(calls) == 2 and not waited['generated']
    assert _stamp(waited) == stamp
    # forced: a corpus made before the call is rebuilt ...
    calls.clear()
    forced = make_embedded_speech(root, force=True, workers=1, **SMALL)
    assert forced['generated'] and _stamp(forced) != stamp
    stamp = _stamp(forced)
    # ... one made by another process after the call is taken
    calls.append(None)
    monkeypatch.setattr(speech, 'load_speech_meta',
                        lambda path: late_load(path, fresh=True))
    again = make_embedded_speech(root, force=True, workers=1, **SMALL)
    assert not again['generated'] and _stamp(again) == stamp


def test_ensure_builds_the_default_when_missing_or_stale(
        tmp_path, monkeypatch):
    made = []
    monkeypatch.setattr(speech, 'make_embedded_speech',
                        lambda root, **kw: made.append((root, kw)) or {})
    root = str(tmp_path / 'speech')
    ensure_embedded_speech(root)  # nothing there: the default corpus
    assert made == [(root, {})]
    ensure_embedded_speech(root, seed=3)  # arguments: always made
    assert made[-1] == (root, dict(seed=3))
    make = speech.make_embedded_speech
    monkeypatch.undo()
    make_embedded_speech(root, workers=1, **SMALL)
    monkeypatch.setattr(speech, 'make_embedded_speech', make)
    made.clear()
    assert not ensure_embedded_speech(root)['generated']
    assert made == []
    # a corpus of another generator version is made again
    with open(osp.join(root, 'manifest.json')) as f:
        meta = json.load(f)
    meta['params']['version'] = 'old'
    with open(osp.join(root, 'manifest.json'), 'w') as f:
        json.dump(meta, f)
    ensure_embedded_speech(root)
    assert made == [(root, {})]
