# Copyright (c) mmssl contributors. All rights reserved.
"""The benchmarks' synthetic batches: images (plain, through a pipeline
that packs algorithm keys or makes views), waveforms and token sequences,
shaped and collated as the config's loader would yield them."""
import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmssl.analysis import make_synthetic_batch


def _image_cfg(pipeline=None, head=None, collate='default_collate'):
    return Config(
        dict(
            default_scope='mmpretrain',
            model=dict(
                backbone=dict(type='ResNet', img_size=(8, 12)),
                **(dict(head=head) if head else {})),
            train_dataloader=dict(
                dataset=dict(pipeline=pipeline or []),
                collate_fn=dict(type=collate))))


def test_random_images_of_the_backbone_size():
    cfg = _image_cfg()
    batch = make_synthetic_batch(cfg, 4)
    images = batch['inputs']
    assert images.shape == (4, 3, 8, 12) and images.dtype == torch.uint8
    # the whole byte range is drawn
    assert images.min() == 0 and images.max() == 255
    # seed 0 by default; another seed, other pixels
    assert torch.equal(images, make_synthetic_batch(cfg, 4, seed=0)['inputs'])
    assert not torch.equal(images,
                           make_synthetic_batch(cfg, 4, seed=1)['inputs'])
    assert all('gt_label' not in s for s in batch['data_samples'])


def test_a_pipeline_that_packs_algorithm_keys_gets_the_images():
    """The loading step is dropped, the rest runs on each image: the
    samples carry its metainfo (the image's own height and width) and the
    classifier's labels."""
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(type='PackInputs', algorithm_keys=['mask'])
    ]
    cfg = _image_cfg(pipeline, head=dict(num_classes=3))
    batch = make_synthetic_batch(cfg, 5)
    plain = make_synthetic_batch(_image_cfg(head=dict(num_classes=3)), 5)
    assert torch.equal(batch['inputs'], plain['inputs'])
    for sample, ref in zip(batch['data_samples'], plain['data_samples']):
        assert sample.metainfo == dict(img_shape=(8, 12), ori_shape=(8, 12))
        assert sample.gt_label.tolist() == ref.gt_label.tolist()
    labels = [int(s.gt_label) for s in batch['data_samples']]
    assert set(labels) <= {0, 1, 2} and len(set(labels)) > 1
    # without algorithm keys or views the pipeline is not run
    packs = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
    batch = make_synthetic_batch(_image_cfg(packs), 2)
    assert batch['data_samples'][0].metainfo == {}


def test_a_multi_view_pipeline_makes_the_views():
    pipeline = [
        dict(type='LoadImageFromFile'),
        dict(
            type='MultiView',
            num_views=2,
            transforms=[[dict(type='RandomFlip', prob=0.)]]),
        dict(type='PackInputs')
    ]
    batch = make_synthetic_batch(_image_cfg(pipeline), 3)
    views = batch['inputs']
    assert isinstance(views, list) and len(views) == 2
    assert all(v.shape == (3, 3, 8, 12) for v in views)
    assert torch.equal(views[0], views[1])  # no flips: the same image


def _audio_cfg(pipeline):
    return Config(
        dict(
            model=dict(backbone=dict(type='mmssl.Data2Vec2AudioEncoder')),
            train_dataloader=dict(dataset=dict(pipeline=pipeline))))


def test_waveforms_of_the_crop_or_one_second():
    crop = [dict(type='mmssl.RandomAudioCrop', max_samples=800)]
    batch = make_synthetic_batch(_audio_cfg(crop), 2)
    assert [tuple(x.shape) for x in batch['inputs']] == [(800, )] * 2
    assert not torch.equal(batch['inputs'][0], batch['inputs'][1])
    assert 0.5 < float(torch.cat(batch['inputs']).std()) < 2.  # N(0, 1)
    batch = make_synthetic_batch(_audio_cfg([]), 1)
    assert tuple(batch['inputs'][0].shape) == (16000, )


def _text_cfg(dataset=None, head=None, preprocessor=None, **backbone):
    backbone = dict(
        type='mmssl.Data2Vec2TextEncoder', vocab_size=8, **backbone)
    if preprocessor:
        backbone['type'] = 'mmssl.ALBERT'
    model = dict(backbone=backbone)
    if head:
        model['head'] = head
    if preprocessor:
        model['data_preprocessor'] = dict(type=preprocessor)
    return Config(
        dict(
            model=model,
            train_dataloader=dict(
                dataset=dict(pipeline=[], **(dataset or {})))))


@pytest.mark.parametrize('length', [16, 15])
def test_token_sequences_are_two_segments(length):
    """``[CLS] a [SEP] b [SEP]``: ids 2 and 3 at the ends and the middle,
    the others drawn from the vocabulary past the special ids, segment 1
    after the middle, every token a word start."""
    cfg = _text_cfg(dict(max_seq_length=length))
    batch = make_synthetic_batch(cfg, 6)
    ids = np.stack(batch['input_ids'])
    assert ids.shape == (6, length)
    mid = length // 2
    assert (ids[:, 0] == 2).all() and (ids[:, mid] == 3).all()
    assert (ids[:, -1] == 3).all()
    body = np.delete(ids, [0, mid, length - 1], axis=1)
    assert body.min() >= 5 and body.max() <= 7  # ids 5..vocab_size-1
    assert set(body.ravel().tolist()) == {5, 6, 7}
    types = np.stack(batch['token_type_ids'])
    expected = np.r_[np.zeros(mid + 1), np.ones(length - mid - 1)]
    assert (types == expected).all()
    assert np.stack(batch['word_starts']).all()
    assert set(batch['sop_label']) == {0, 1}
    assert batch['sample_idx'] == list(range(6))
    assert 'gt_label' not in batch
    again = make_synthetic_batch(cfg, 6, seed=0)
    assert (np.stack(again['input_ids']) == ids).all()
    other = make_synthetic_batch(cfg, 6, seed=1)
    assert not (np.stack(other['input_ids']) == ids).all()


@pytest.mark.parametrize('dataset, backbone, length', [
    (dict(max_seq_length=9, max_length=11), {}, 9),
    (dict(max_length=11, tokens_per_sample=13), {}, 11),
    (dict(tokens_per_sample=13), dict(max_position=20), 13),
    ({}, dict(max_position=20), 20),
    ({}, {}, 128),
])
def test_the_sequence_length(dataset, backbone, length):
    batch = make_synthetic_batch(_text_cfg(dataset, **backbone), 1)
    assert len(batch['input_ids'][0]) == length


def test_labels_of_a_text_classifier_or_regressor():
    cfg = _text_cfg(dict(max_length=8), head=dict(num_classes=3))
    labels = make_synthetic_batch(cfg, 12)['gt_label']
    assert all(isinstance(v, int) for v in labels)
    assert set(labels) == {0, 1, 2}
    cfg = _text_cfg(dict(max_length=8), head=dict(regression=True))
    labels = make_synthetic_batch(cfg, 12)['gt_label']
    assert all(isinstance(v, float) and 0 <= v < 1 for v in labels)
    assert len(set(labels)) == 12
    # the text path is found from the data preprocessor, too
    cfg = _text_cfg(
        dict(max_length=8), preprocessor='mmssl.TextDataPreprocessor')
    assert len(make_synthetic_batch(cfg, 2)['input_ids']) == 2
