# Copyright (c) mmssl contributors. All rights reserved.
"""The labelled data of a backbone evaluation: configs and image folders."""
from types import SimpleNamespace

import pytest
from mmengine.config import Config
from PIL import Image

from mmssl.evaluation.protocols import (EvalDataError, build_eval_dataloader,
                                        default_img_size, describe_data,
                                        folder_frozen_eval, format_data,
                                        frozen_eval_cfg, train_image_size)
from mmssl.testing import write_image_folder

THREE = (('dark', 30), ('mid', 120), ('light', 220))


def _frozen(root):
    loader = dict(
        batch_size=2,
        num_workers=0,
        dataset=dict(type='mmpretrain.CustomDataset', data_prefix=root))
    return dict(train_dataloader=loader, val_dataloader=loader)


def test_split_per_class_is_seeded_and_covers_every_image(tmp_path):
    root = tmp_path / 'flat'
    write_image_folder(root, 5, seed=6, classes=THREE)
    frozen, source = folder_frozen_eval(
        str(root), 16, num_workers=0, val_fraction=0.4, seed=1)
    assert source == (f"--data-root '{root}' (split per class, "
                      '--val-fraction 0.4, seed 1)')
    train = frozen['train_dataloader']['dataset']['indices']
    val = frozen['val_dataloader']['dataset']['indices']
    # 40 % of each class of 5: two images held out per class
    assert len(val) == 3 * 2 and len(train) == 3 * 3
    assert sorted(train + val) == list(range(15))
    assert train == sorted(train) and val == sorted(val)
    # deterministic for a seed, another seed draws another split
    again, _ = folder_frozen_eval(
        str(root), 16, num_workers=0, val_fraction=0.4, seed=1)
    assert again['val_dataloader']['dataset']['indices'] == val
    other, _ = folder_frozen_eval(
        str(root), 16, num_workers=0, val_fraction=0.4, seed=2)
    assert other['val_dataloader']['dataset']['indices'] != val
    # at least one image per class is held out, at least one kept
    tiny, _ = folder_frozen_eval(str(root), 16, val_fraction=0.01)
    assert len(tiny['val_dataloader']['dataset']['indices']) == 3
    most, _ = folder_frozen_eval(str(root), 16, val_fraction=0.99)
    assert len(most['train_dataloader']['dataset']['indices']) == 3


def test_folder_defaults(tmp_path):
    root = tmp_path / 'flat'
    write_image_folder(root, 5, classes=THREE)
    frozen, source = folder_frozen_eval(str(root), 16)
    assert source.endswith('(split per class, --val-fraction 0.2, seed 0)')
    for loader in frozen.values():
        assert (loader['batch_size'], loader['num_workers']) == (64, 2)
    # 20 % of 5 images per class: one held out per class, drawn with seed 0
    seeded, _ = folder_frozen_eval(str(root), 16, seed=0)
    assert frozen == seeded
    assert len(frozen['val_dataloader']['dataset']['indices']) == 3


def test_linked_class_folders_count(tmp_path):
    """Images reached through a linked folder count, as the data set reads
    them (mmengine's file listing follows links)."""
    from mmpretrain.datasets import CustomDataset
    store = tmp_path / 'store'
    write_image_folder(store, 2, classes=THREE)
    root = tmp_path / 'linked'
    for name, _ in THREE:
        (root / name).mkdir(parents=True)
        (root / name / 'images').symlink_to(store / name)
    frozen, _ = folder_frozen_eval(str(root), 16, val_fraction=0.5)
    assert len(frozen['val_dataloader']['dataset']['indices']) == 3
    assert len(CustomDataset(data_root=str(root), pipeline=[])) == 6


def test_folder_loaders_resize_crop_and_label(tmp_path):
    root = tmp_path / 'split'
    write_image_folder(root / 'train', 2, seed=0, classes=THREE, size=40)
    write_image_folder(root / 'val', 1, seed=1, classes=THREE, size=24)
    frozen, source = folder_frozen_eval(
        str(root), 16, batch_size=3, num_workers=0)
    assert source == f"--data-root '{root}' (train/ and val/)"
    assert frozen['train_dataloader']['batch_size'] == 3
    loader = build_eval_dataloader(frozen['val_dataloader'], seed=0)
    batch = next(iter(loader))
    assert [tuple(x.shape) for x in batch['inputs']] == [(3, 16, 16)] * 3
    # labels are the sorted class names' positions; dark images are dark
    labels = [int(s.gt_label) for s in batch['data_samples']]
    assert labels == [0, 1, 2]  # dark, light, mid
    means = [float(x.float().mean()) for x in batch['inputs']]
    assert means[0] < means[2] < means[1]
    data = describe_data(source, loader, loader)
    assert data['val'] == dict(
        dataset='CustomDataset',
        folder=str(root / 'val'),
        split=None,
        num_images=3,
        classes=['dark', 'light', 'mid'])
    assert format_data(data).splitlines()[1] == (
        f"  train: CustomDataset '{root / 'val'}', 3 images, 3 classes "
        '(dark, light, mid)')


def test_two_images_a_class_split_one_one(tmp_path):
    root = tmp_path / 'two'
    write_image_folder(root, 2, classes=THREE)
    frozen, _ = folder_frozen_eval(str(root), 16, val_fraction=0.5)
    assert len(frozen['val_dataloader']['dataset']['indices']) == 3
    assert len(frozen['train_dataloader']['dataset']['indices']) == 3


def test_describe_split_names_the_image_folder(tmp_path):
    """The folder is the data set's image prefix, not its root."""
    root = tmp_path / 'data'
    write_image_folder(root / 'val', 1, classes=THREE)
    loader = build_eval_dataloader(
        dict(
            batch_size=3,
            num_workers=0,
            dataset=dict(
                type='mmpretrain.CustomDataset',
                data_root=str(root),
                data_prefix='val')),
        seed=0)
    data = describe_data('x', loader, loader)
    assert data['val']['folder'] == str(root / 'val')

    class Rooted(list):
        """A data set with a root and no image prefix (e.g. mmseg's)."""
        data_root = '/data/ade/'
        split = 'validation'

    rooted = describe_data('x', SimpleNamespace(dataset=Rooted([1, 2])),
                           SimpleNamespace(dataset=Rooted()))
    assert rooted['train'] == dict(
        dataset='Rooted', folder='/data/ade', split='validation', num_images=2)


def test_format_data_shortens_long_class_lists():
    split = dict(
        dataset='ImageNet',
        folder='/data/in1k',
        split='train',
        num_images=20,
        classes=[f'c{i}' for i in range(12)])
    ten = dict(split, classes=[f'c{i}' for i in range(10)])
    text = format_data(dict(source='the config', train=ten, val=ten))
    assert text.splitlines()[1].endswith(
        '10 classes (c0, c1, c2, c3, c4, c5, c6, c7, c8, c9)')
    text = format_data(dict(source='the config', train=split, val=split))
    assert text.splitlines() == [
        'evaluation data: the config',
        "  train: ImageNet '/data/in1k' split 'train', 20 images, 12 classes "
        '(c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, ... (2 more))',
        "  val: ImageNet '/data/in1k' split 'train', 20 images, 12 classes "
        '(c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, ... (2 more))'
    ]


def test_folder_errors_say_what_to_fix(tmp_path):
    with pytest.raises(EvalDataError, match='does not exist'):
        folder_frozen_eval(str(tmp_path / 'nowhere'), 32)
    loose = tmp_path / 'loose'
    loose.mkdir()
    Image.new('RGB', (8, 8)).save(loose / 'x.png')
    with pytest.raises(EvalDataError, match=r'no class sub-folders \(1 imag'):
        folder_frozen_eval(str(loose), 32)
    half = tmp_path / 'half'
    write_image_folder(half / 'train', 2)
    with pytest.raises(EvalDataError, match='has train/ but no val/'):
        folder_frozen_eval(str(half), 32)
    write_image_folder(half / 'val', 2, classes=(('a', 40), ('c', 90)))
    with pytest.raises(
            EvalDataError,
            match=r"only in train/: \['b'\], only in val/: \['c'\]"):
        folder_frozen_eval(str(half), 32)
    hidden = tmp_path / 'hidden'
    write_image_folder(hidden, 2)
    (hidden / '.ipynb_checkpoints').mkdir()
    with pytest.raises(
            EvalDataError, match="'.ipynb_checkpoints' of .* hold no images"):
        folder_frozen_eval(str(hidden), 32)
    one = tmp_path / 'one'
    write_image_folder(one, 2, classes=(('a', 40), ))
    with pytest.raises(EvalDataError, match='at least two'):
        folder_frozen_eval(str(one), 32)
    single = tmp_path / 'single'
    write_image_folder(single, 1)
    with pytest.raises(EvalDataError, match='has one image'):
        folder_frozen_eval(str(single), 32)


def test_frozen_eval_cfg_prefers_the_data_config(tmp_path):
    own = Config(dict(frozen_eval=_frozen('own')))
    data_cfg = tmp_path / 'data.py'
    Config(dict(frozen_eval=_frozen('other'))).dump(str(data_cfg))
    frozen, source = frozen_eval_cfg(own, str(data_cfg), 'mae.py')
    assert frozen['train_dataloader']['dataset']['data_prefix'] == 'other'
    assert source == (f"the frozen_eval of --data-cfg '{data_cfg}' "
                      "(it replaces the one of 'mae.py')")
    frozen, source = frozen_eval_cfg(Config(), str(data_cfg), 'mae.py')
    assert source == f"the frozen_eval of --data-cfg '{data_cfg}'"
    frozen, source = frozen_eval_cfg(own, None, 'mae.py')
    assert frozen['val_dataloader']['dataset']['data_prefix'] == 'own'
    assert source == "the frozen_eval of 'mae.py'"


def test_frozen_eval_cfg_errors(tmp_path):
    with pytest.raises(EvalDataError, match="'mae.py' has no `frozen_eval"):
        frozen_eval_cfg(Config(), None, 'mae.py')
    # a frozen_eval without both loaders is no evaluation data
    half = Config(dict(frozen_eval=dict(train_dataloader=dict())))
    with pytest.raises(EvalDataError, match='--data-root FOLDER'):
        frozen_eval_cfg(half, None, 'mae.py')
    bare = tmp_path / 'bare.py'
    Config(dict(model=dict())).dump(str(bare))
    with pytest.raises(EvalDataError, match=f"--data-cfg '{bare}' has no"):
        frozen_eval_cfg(Config(), str(bare), 'mae.py')
    with pytest.raises(FileNotFoundError, match='missing.py'):
        frozen_eval_cfg(Config(), str(tmp_path / 'missing.py'), 'mae.py')


def _train(*steps):
    return dict(train_dataloader=dict(dataset=dict(pipeline=list(steps))))


@pytest.mark.parametrize(
    'cfg, size',
    [
        (dict(model=dict(backbone=dict(img_size=96))), 96),
        (dict(model=dict(backbone=dict(img_size=(80, 48)))), 80),
        # the backbone's size wins over the pipeline's
        (dict(
            model=dict(backbone=dict(img_size=40)),
            **_train(dict(type='RandomResizedCrop', scale=112))), 40),
        (dict(
            model=dict(backbone=dict(type='ResNet')),
            **_train(
                dict(type='LoadImageFromFile'),
                dict(type='mmpretrain.RandomResizedCrop', scale=112))), 112),
        (_train(dict(type='RandomResizedCrop', scale=(64, 32))), 64),
        (_train(dict(type='mmpretrain.CenterCrop', crop_size=72)), 72),
        (_train(dict(type='RandomCrop', crop_size=(56, 40))), 56),
        # a crop wins over an earlier resize; a resize alone counts
        (_train(
            dict(type='Resize', scale=256),
            dict(type='RandomCrop', crop_size=200)), 200),
        (_train('not a step', dict(type='mmpretrain.Resize',
                                   scale=(48, 64))), 48),
        (_train(dict(type='RandomFlip')), None),
        (dict(model=dict(backbone=dict(type='ResNet'))), None),
        (dict(), None),
    ])
def test_train_image_size(cfg, size):
    assert train_image_size(Config(cfg)) == size
    assert default_img_size(Config(cfg)) == (size or 224)
