# Copyright (c) mmssl contributors. All rights reserved.
"""Synthetic label noise, the noisy-label wrapper data set and CIFAR-format
copies."""
import json
import os

import numpy as np
import pytest
from mmengine.dataset import BaseDataset
from PIL import Image

# yapf: disable
from mmssl.datasets.label_noise import (CIFAR10_ASYM_MAPPING,
                                        CIFAR100_ASYM_MAPPING,
                                        CIFAR100_SUPERCLASSES,
                                        asymmetric_noise,
                                        cifar100_asym_mapping, instance_noise,
                                        noise_rate, resolve_mapping,
                                        symmetric_noise, transition_matrix)
from mmssl.datasets.noisy_labels import (NOISY_META_KEYS, CIFARFormatDataset,
                                         NoisyLabelDataset, make_cifar_copy)

# yapf: enable


def _labels(n, c=10):
    return np.arange(n) % c


# -- pure noise functions -----------------------------------------------------


def test_symmetric_noise_rate_and_matrix():
    clean = _labels(50000)
    keep = clean.copy()
    noisy = symmetric_noise(clean, 10, 0.5, seed=0)
    assert np.array_equal(clean, keep)  # input untouched
    # DivideMix: redrawn from all C classes -> flip rate r (1 - 1/C)
    assert abs(noise_rate(clean, noisy) - 0.45) < 0.01
    T = transition_matrix(clean, noisy, 10)
    assert np.allclose(T.sum(1), 1)
    assert np.allclose(np.diag(T), 0.55, atol=0.03)
    off = T[~np.eye(10, dtype=bool)]
    assert np.allclose(off, 0.05, atol=0.015)
    # exactly round(r N) items change when the true class is excluded
    excl = symmetric_noise(clean, 10, 0.5, seed=0, exclude_true=True)
    assert noise_rate(clean, excl) == 0.5
    # seeds
    assert np.array_equal(noisy, symmetric_noise(clean, 10, 0.5, seed=0))
    assert not np.array_equal(noisy, symmetric_noise(clean, 10, 0.5, seed=1))
    assert np.array_equal(symmetric_noise(clean, 10, 0., seed=3), clean)


def test_asymmetric_noise_is_exact_on_cifar10_classes():
    clean = _labels(20000)
    noisy = asymmetric_noise(clean, 10, 0.4, CIFAR10_ASYM_MAPPING, seed=0)
    T = transition_matrix(clean, noisy, 10)
    expected = np.eye(10)
    for src, dst in {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}.items():
        expected[src, src], expected[src, dst] = 0.6, 0.4
    # zero wherever the mapping allows no flip, exact 1 for clean classes
    assert np.array_equal(T == 0, expected == 0)
    for c in (0, 1, 6, 7, 8):
        assert T[c, c] == 1
    assert np.allclose(T, expected, atol=0.04)  # 2000 items per class
    assert np.array_equal(
        noisy, asymmetric_noise(clean, 10, 0.4, CIFAR10_ASYM_MAPPING, 0))
    assert not np.array_equal(
        noisy, asymmetric_noise(clean, 10, 0.4, CIFAR10_ASYM_MAPPING, 1))


def test_cifar100_mapping_follows_the_superclasses():
    from mmpretrain.datasets.categories import CIFAR100_CATEGORIES as names
    members = [m for group in CIFAR100_SUPERCLASSES.values() for m in group]
    assert sorted(members) == sorted(names)  # 20 x 5, every class once
    group_of = {
        names.index(m): g
        for g, group in CIFAR100_SUPERCLASSES.items()
        for m in group
    }
    assert sorted(CIFAR100_ASYM_MAPPING) == list(range(100))
    assert sorted(CIFAR100_ASYM_MAPPING.values()) == list(range(100))
    for src, dst in CIFAR100_ASYM_MAPPING.items():
        assert src != dst and group_of[src] == group_of[dst]
    # people: baby -> boy -> girl -> man -> woman -> baby
    chain = [names.index(n) for n in ('baby', 'boy', 'girl', 'man', 'woman')]
    for a, b in zip(chain, chain[1:] + chain[:1]):
        assert CIFAR100_ASYM_MAPPING[a] == b
    blocks = cifar100_asym_mapping('index')
    assert blocks[0] == 1 and blocks[4] == 0 and blocks[99] == 95


def test_instance_noise_depends_on_features():
    rng = np.random.default_rng(0)
    clean = _labels(3000, 5)
    feats = rng.standard_normal((3000, 48)).astype(np.float32)
    noisy = instance_noise(clean, feats, 5, 0.4, seed=0)
    assert abs(noise_rate(clean, noisy) - 0.4) < 0.03
    assert np.array_equal(noisy, instance_noise(clean, feats, 5, 0.4, 0))
    assert not np.array_equal(noisy, instance_noise(clean, feats, 5, 0.4, 1))
    # the wrong classes follow the features: same seed, other features
    other = instance_noise(clean, feats[::-1].copy(), 5, 0.4, seed=0)
    assert not np.array_equal(noisy, other)
    assert np.array_equal(instance_noise(clean, feats, 5, 0., 0), clean)


def test_resolve_mapping_names_and_errors():
    names = ('cat', 'dog', 'fox')
    assert resolve_mapping({'cat': 'dog', 2: 0}, 3, names) == {0: 1, 2: 0}
    assert resolve_mapping([['dog', 'cat']], 3, names) == {1: 0}
    with pytest.raises(ValueError, match=r"'cow'.*valid names.*'fox'"):
        resolve_mapping({'cow': 'dog'}, 3, names)
    with pytest.raises(ValueError, match=r'mapping class.*\[0, 2\], got 5'):
        resolve_mapping({0: 5}, 3, names)
    with pytest.raises(ValueError, match='more than once'):
        resolve_mapping([(0, 1), (0, 2)], 3, names)
    with pytest.raises(ValueError, match='pair'):
        resolve_mapping([(0, 1, 2)], 3, names)


@pytest.mark.parametrize('rate', [1.0, -0.1, float('nan')])
def test_rate_outside_range_is_refused(rate):
    with pytest.raises(ValueError, match=r'rate .*\[0\.0, 1\.0\)'):
        symmetric_noise(_labels(10), 10, rate)
    with pytest.raises(ValueError, match=r'noise_rate .*\[0\.0, 1\.0\)'):
        NoisyLabelDataset(dict(type='x'), noise_rate=rate)


# -- data sets on disk --------------------------------------------------------


def _folder(tmp_path, n=30, classes=3, size=32, name='imgs'):
    """A class-folder data set of random RGB PNGs; returns (cfg, images by
    sorted path)."""
    rng = np.random.default_rng(1)
    root = tmp_path / name
    images = {}
    for i in range(n):
        folder = root / f'c{i % classes}'
        folder.mkdir(parents=True, exist_ok=True)
        img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        path = folder / f'{i:03d}.png'
        Image.fromarray(img).save(path)
        images[str(path)] = img
    cfg = dict(type='mmpretrain.CustomDataset', data_prefix=str(root))
    return cfg, images


def _pack_pipeline():
    return [
        dict(type='LoadImageFromFile'),
        dict(type='PackInputs', meta_keys=NOISY_META_KEYS)
    ]


def test_wrapper_keeps_clean_labels_and_sample_idx(tmp_path):
    cfg, _ = _folder(tmp_path, n=60)
    ds = NoisyLabelDataset(
        cfg,
        noise_type='symmetric',
        noise_rate=0.5,
        exclude_true=True,
        seed=2,
        pipeline=_pack_pipeline())
    assert len(ds) == 60
    assert ds.metainfo['classes'] == ('c0', 'c1', 'c2')
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    clean = np.array([it['gt_label_clean'] for it in infos])
    noisy = np.array([it['gt_label'] for it in infos])
    # the inner folder labels are the clean ones (sorted paths: c0, c1, c2)
    assert np.array_equal(clean, np.repeat([0, 1, 2], 20))
    assert np.array_equal(clean, ds.get_clean_labels())
    assert np.array_equal(noisy, ds.get_gt_labels())
    assert noise_rate(clean, noisy) == 0.5 == ds.realised_noise_rate
    assert ds.metainfo['realised_noise_rate'] == 0.5
    assert np.allclose(ds.metainfo['transition_matrix'], ds.transition)
    assert ds.noisy_mask.sum() == 30
    # sample_idx and gt_label_clean reach the data sample's metainfo
    for i in (0, 37):
        sample = ds[i]['data_samples']
        assert sample.sample_idx == i
        assert sample.gt_label_clean == clean[i]
        assert sample.gt_label.item() == noisy[i]


def test_asymmetric_wrapper_with_class_names(tmp_path):
    cfg, _ = _folder(tmp_path, n=60)
    ds = NoisyLabelDataset(
        cfg, noise_type='asymmetric', noise_rate=0.5, mapping={'c0': 'c2'})
    assert ds.noise_mapping == {0: 2}
    T = ds.transition
    assert T[1, 1] == T[2, 2] == 1 and T[0, 1] == 0
    assert 0 < T[0, 2] < 1
    with pytest.raises(ValueError, match=r"'c9'.*valid names.*'c0', 'c1'"):
        NoisyLabelDataset(
            cfg, noise_type='asymmetric', noise_rate=0.5, mapping={'c9': 0})
    with pytest.raises(ValueError, match='needs mapping'):
        NoisyLabelDataset(cfg, noise_type='asymmetric', noise_rate=0.5)


def test_wrapper_errors(tmp_path):
    cfg, _ = _folder(tmp_path, n=6)
    with pytest.raises(ValueError, match=r"noise_type must be one of.*'sym'"):
        NoisyLabelDataset(cfg, noise_type='sym', noise_rate=0.2)
    with pytest.raises(ValueError, match='without gt_label'):
        NoisyLabelDataset(dict(cfg, with_label=False), noise_rate=0.2)


def test_noise_file_round_trip(tmp_path):
    cfg, _ = _folder(tmp_path, n=60)
    path = tmp_path / 'noise' / 'sym_0.4.json'
    first = NoisyLabelDataset(
        cfg, noise_rate=0.4, seed=5, noise_file=str(path))
    assert path.is_file()
    saved = json.loads(path.read_text())
    assert saved['noisy_labels'] == first.get_gt_labels().tolist()
    # a different seed with the same file reads the cached labels' settings
    with pytest.raises(ValueError, match=r'does not match.*seed=5.*\b6\b'):
        NoisyLabelDataset(cfg, noise_rate=0.4, seed=6, noise_file=str(path))
    with pytest.raises(ValueError, match='does not match.*noise_rate'):
        NoisyLabelDataset(cfg, noise_rate=0.2, seed=5, noise_file=str(path))
    # the same settings read the file back (change it to prove it is read)
    saved['noisy_labels'][0] = (saved['noisy_labels'][0] + 1) % 3
    path.write_text(json.dumps(saved))
    again = NoisyLabelDataset(
        cfg, noise_rate=0.4, seed=5, noise_file=str(path))
    assert again.get_gt_labels().tolist() == saved['noisy_labels']
    # the reference's plain list: checked for length and range only
    plain = tmp_path / 'plain.json'
    plain.write_text(json.dumps([0] * 60))
    ds = NoisyLabelDataset(cfg, noise_rate=0.4, noise_file=str(plain))
    assert ds.get_gt_labels().tolist() == [0] * 60
    plain.write_text(json.dumps([0] * 59))
    with pytest.raises(ValueError, match='59 labels.*60 items'):
        NoisyLabelDataset(cfg, noise_rate=0.4, noise_file=str(plain))
    plain.write_text(json.dumps([7] * 60))
    with pytest.raises(ValueError, match=r'does not match.*\[0, 3\)'):
        NoisyLabelDataset(cfg, noise_rate=0.4, noise_file=str(plain))


def test_cifar_copy_reads_back_through_mmpretrain(tmp_path):
    from mmpretrain.datasets import CIFAR10
    train_cfg, images = _folder(tmp_path, n=23, name='train')
    test_cfg, test_images = _folder(tmp_path, n=7, name='test')
    out = tmp_path / 'copy'
    make_cifar_copy(train_cfg, str(out), test_dataset_cfg=test_cfg)
    for split, imgs in (('train', images), ('test', test_images)):
        ds = CIFARFormatDataset(data_root=str(out), split=split)
        assert ds.metainfo['classes'] == ('c0', 'c1', 'c2')
        paths = sorted(imgs)  # the folder data set's order
        assert len(ds) == len(paths)
        for i, path in enumerate(paths):
            info = ds.get_data_info(i)
            assert np.array_equal(info['img'], imgs[path])
            assert info['gt_label'] == int(path.split('/c')[-1][0])
    # plain mmpretrain CIFAR10 checks the md5 sums of the real CIFAR-10
    with pytest.raises(RuntimeError):
        CIFAR10(data_root=str(out), download=False)
    # other sides read back too (not through mmpretrain's 32x32 loader)
    make_cifar_copy(train_cfg, str(tmp_path / 'small'), size=16)
    small = CIFARFormatDataset(data_root=str(tmp_path / 'small'))
    assert small.get_data_info(0)['img'].shape == (16, 16, 3)
    with pytest.raises(ValueError, match='test split.*no items'):
        CIFARFormatDataset(str(tmp_path / 'small'), 'test')


@pytest.mark.parametrize('source', ['cifar', 'folder'])
def test_instance_noise_wrapper_reads_images(tmp_path, source):
    cfg, _ = _folder(tmp_path, n=60)
    if source == 'cifar':
        make_cifar_copy(cfg, str(tmp_path / 'copy'))
        cfg = dict(
            type='mmssl.CIFARFormatDataset', data_root=str(tmp_path / 'copy'))
    ds = NoisyLabelDataset(
        cfg, noise_type='instance', noise_rate=0.4, image_size=8)
    clean = ds.get_clean_labels()
    assert np.array_equal(np.sort(clean), np.repeat([0, 1, 2], 20))
    assert 0.2 < ds.realised_noise_rate < 0.6
    again = NoisyLabelDataset(
        cfg, noise_type='instance', noise_rate=0.4, image_size=8)
    assert np.array_equal(ds.get_gt_labels(), again.get_gt_labels())


def test_wrapper_defaults_follow_the_functions(tmp_path):
    from mmssl.datasets.label_noise import image_features
    cfg, _ = _folder(tmp_path, n=30)
    ds = NoisyLabelDataset(cfg)  # symmetric, rate 0: the clean labels
    assert ds.noise_type == 'symmetric' and ds.realised_noise_rate == 0
    clean = ds.get_clean_labels()
    sym = NoisyLabelDataset(cfg, noise_rate=0.5)
    assert np.array_equal(sym.get_gt_labels(),
                          symmetric_noise(clean, 3, 0.5, 0, False))
    inst = NoisyLabelDataset(cfg, noise_type='instance', noise_rate=0.4)
    items = [inst.get_data_info(i) for i in range(len(inst))]
    feats = image_features(items, 32)
    assert np.array_equal(inst.get_gt_labels(),
                          instance_noise(clean, feats, 3, 0.4, 0, 0.1))


def test_wrapper_argument_errors(tmp_path):
    with pytest.raises(ValueError, match='dataset must be the config dict'):
        NoisyLabelDataset(dict(data_prefix=str(tmp_path)), noise_rate=0.2)
    with pytest.raises(ValueError, match='norm_std'):
        NoisyLabelDataset(dict(type='x'), noise_type='instance', norm_std=0.)


def test_instance_rate_zero_reads_no_image(tmp_path, monkeypatch):
    import mmssl.datasets.noisy_labels as module
    cfg, _ = _folder(tmp_path, n=6)

    def fail(*args, **kwargs):
        raise AssertionError('the images were read')

    monkeypatch.setattr(module, 'image_features', fail)
    ds = NoisyLabelDataset(cfg, noise_type='instance', noise_rate=0.)
    assert ds.realised_noise_rate == 0


def test_cifar10_classes_give_the_default_mapping(tmp_path):
    from mmpretrain.datasets.categories import CIFAR10_CATEGORIES

    from mmssl.datasets.label_noise import CIFAR10_ASYM_MAPPING
    rng = np.random.default_rng(0)
    root = tmp_path / 'cifar_names'
    for name in CIFAR10_CATEGORIES:  # alphabetical: the folder order
        (root / name).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(
            root / name / '0.png')
    cfg = dict(type='mmpretrain.CustomDataset', data_prefix=str(root))
    ds = NoisyLabelDataset(cfg, noise_type='asymmetric', noise_rate=0.5)
    assert ds.metainfo['classes'] == tuple(CIFAR10_CATEGORIES)
    assert ds.noise_mapping == CIFAR10_ASYM_MAPPING


@pytest.mark.parametrize('noise_type,kwargs,keys', [
    ('symmetric', dict(exclude_true=True), dict(exclude_true=True)),
    ('asymmetric', dict(mapping={0: 1}), dict(mapping=[[0, 1]])),
    ('instance', dict(image_size=8,
                      norm_std=0.2), dict(image_size=8, norm_std=0.2)),
])
def test_noise_file_records_the_type_settings(tmp_path, noise_type, kwargs,
                                              keys):
    cfg, _ = _folder(tmp_path, n=12)
    path = tmp_path / 'noise.json'  # in a folder that exists already
    NoisyLabelDataset(
        cfg,
        noise_type=noise_type,
        noise_rate=0.3,
        noise_file=str(path),
        **kwargs)
    saved = json.loads(path.read_text())
    others = {'exclude_true', 'mapping', 'image_size', 'norm_std'} - set(keys)
    assert all(saved[k] == v for k, v in keys.items())
    assert not others & set(saved)
    assert saved['noise_type'] == noise_type


def test_noise_file_of_another_kind_is_refused(tmp_path):
    cfg, _ = _folder(tmp_path, n=6)
    for content in (dict(labels=[0] * 6), 5):
        path = tmp_path / 'other.json'
        path.write_text(json.dumps(content))
        with pytest.raises(
                ValueError,
                match='neither a noise file of this '
                'class nor a JSON list of labels'):
            NoisyLabelDataset(cfg, noise_rate=0.2, noise_file=str(path))


def test_noisy_mask_marks_the_changed_labels(tmp_path):
    cfg, _ = _folder(tmp_path, n=30)
    ds = NoisyLabelDataset(cfg, noise_rate=0.3, exclude_true=True)
    changed = ds.get_clean_labels() != ds.get_gt_labels()
    assert changed.sum() == 9
    assert np.array_equal(ds.noisy_mask, changed)


@pytest.mark.parametrize('classes', [20, 21])
def test_logged_transition_matrix(tmp_path, monkeypatch, classes):
    import mmssl.datasets.noisy_labels as module
    logged = []
    monkeypatch.setattr(module, 'print_log',
                        lambda msg, **kwargs: logged.append(msg))
    cfg, _ = _folder(tmp_path, n=3 * classes, classes=classes, size=8)
    ds = NoisyLabelDataset(cfg, noise_rate=0.5, exclude_true=True)
    msg = logged[-1]
    assert msg.startswith('NoisyLabelDataset: symmetric noise, requested '
                          'rate 0.5, realised noise rate')
    if classes == 20:  # the whole matrix, one line per row, 3 decimals
        lines = msg.split('\n')
        assert lines[1] == 'transition matrix (rows: clean, columns: noisy):'
        assert len(lines) == 2 + 20
        assert '0.333' in msg and '0.3333' not in msg
    else:  # the diagonal's range only
        diag = np.diag(ds.transition)
        assert '\n' not in msg
        assert msg.endswith(
            f'; transition matrix diagonal in [{diag.min():.3f}, '
            f'{diag.max():.3f}], mean {diag.mean():.3f}')


class _Arrays(BaseDataset):
    """Labelled 8 x 8 images, with or without class names."""

    def __init__(self, labels, classes=None, pipeline=()):
        self.labels = labels
        super().__init__(
            metainfo=dict(classes=classes) if classes else None,
            pipeline=pipeline,
            serialize_data=False)

    def load_data_list(self):
        return [
            dict(img=np.full((8, 8, 3), i, np.uint8), gt_label=y)
            for i, y in enumerate(self.labels)
        ]


def _meta(folder):
    import pickle
    with open(folder + '/batches.meta', 'rb') as f:
        return pickle.load(f)


def test_cifar_copy_layout_and_class_names(tmp_path):
    train = dict(type=_Arrays, labels=[0, 1, 2] * 7 + [0, 1])
    folder = make_cifar_copy(train, str(tmp_path / 'a'), size=8)
    # CIFAR-10's files, python-2 pickles (protocol 2)
    assert sorted(os.listdir(folder)) == [
        'batches.meta', 'data_batch_1', 'data_batch_2', 'data_batch_3',
        'data_batch_4', 'data_batch_5', 'test_batch'
    ]
    with open(folder + '/data_batch_1', 'rb') as f:
        assert f.read(2) == b'\x80\x02'
    meta = _meta(folder)
    # 23 items in five batches of 5, 5, 5, 4, 4; classes named by index
    assert meta['num_cases_per_batch'] == 5
    assert meta['label_names'] == ['0', '1', '2'] and meta['num_vis'] == 192
    # writing into the same folder again replaces the copy
    make_cifar_copy(train, str(tmp_path / 'a'), size=8)
    # the test split's class names serve both
    test = dict(type=_Arrays, labels=[1], classes=('x', 'y', 'z'))
    folder = make_cifar_copy(
        dict(type=_Arrays, labels=[0, 1]),
        str(tmp_path / 'b'),
        size=8,
        test_dataset_cfg=test)
    assert _meta(folder)['label_names'] == ['x', 'y', 'z']
    # the largest label of either split sets the count
    folder = make_cifar_copy(
        dict(type=_Arrays, labels=[4, 0]),
        str(tmp_path / 'c'),
        size=8,
        test_dataset_cfg=dict(type=_Arrays, labels=[1]))
    assert _meta(folder)['label_names'] == ['0', '1', '2', '3', '4']
    with pytest.raises(ValueError, match=r'label 2 is outside the 2 classes'):
        make_cifar_copy(
            dict(type=_Arrays, labels=[0, 2], classes=('x', 'y')),
            str(tmp_path / 'd'))
    with pytest.raises(
            ValueError, match='src_dataset_cfg must be a data set '
            'config dict'):
        make_cifar_copy(dict(labels=[0]), str(tmp_path / 'e'))


def test_cifar_format_reads_the_meta(tmp_path):
    import pickle
    cfg, _ = _folder(tmp_path, n=10, size=16)
    folder = make_cifar_copy(cfg, str(tmp_path / 'copy'), size=16)
    small = CIFARFormatDataset(data_root=str(tmp_path / 'copy'))
    assert small.metainfo['classes'] == ('c0', 'c1', 'c2')
    # a meta file without num_vis is CIFAR's 32 x 32
    folder = make_cifar_copy(cfg, str(tmp_path / 'c32'))
    meta = _meta(folder)
    del meta['num_vis']
    with open(folder + '/batches.meta', 'wb') as f:
        pickle.dump(meta, f, protocol=2)
    ds = CIFARFormatDataset(data_root=str(tmp_path / 'c32'))
    assert ds.get_data_info(0)['img'].shape == (32, 32, 3)
    # a missing batch is refused, never downloaded
    os.remove(folder + '/data_batch_2')
    with pytest.raises(RuntimeError):
        CIFARFormatDataset(data_root=str(tmp_path / 'c32'))


def test_classes_counted_from_labels_without_names(tmp_path):
    ds = NoisyLabelDataset(
        dict(type=_Arrays, labels=[0, 3, 1, 3]), noise_rate=0.5)
    assert ds.num_classes == 4 and ds.transition.shape == (4, 4)
    one = NoisyLabelDataset(dict(type=_Arrays, labels=[0, 0]))
    assert one.num_classes == 2  # at least two classes


def test_logged_mapping_of_asymmetric_noise(tmp_path, monkeypatch):
    import mmssl.datasets.noisy_labels as module
    logged = []
    monkeypatch.setattr(module, 'print_log',
                        lambda msg, **kwargs: logged.append(msg))
    cfg, _ = _folder(tmp_path, n=6, size=8)
    NoisyLabelDataset(
        cfg, noise_type='asymmetric', noise_rate=0.5, mapping={0: 2})
    assert ', mapping {0: 2}\ntransition matrix' in logged[-1]
    NoisyLabelDataset(cfg, noise_rate=0.5)
    assert 'mapping' not in logged[-1]
