# Copyright (c) mmssl contributors. All rights reserved.
"""UnlabeledImageFolder: discovery, messages and unreadable files."""
import contextlib
import logging
import os.path as osp

import numpy as np
import pytest
import torch
from mmpretrain.registry import DATASETS
from PIL import Image

PIPELINE = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]


def _image(path, value=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, dtype=np.uint8)).save(
        path, format='PNG' if path.suffix.lower() == '.png' else 'JPEG')


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / 'images'
    _image(root / 'a' / 'x.JPG', 10)
    _image(root / 'a' / 'b' / 'y.png', 20)
    _image(root / 'z.jpeg', 30)
    _image(root / 'c' / 'w.PnG', 40)
    (root / 'notes.txt').write_text('not an image')
    return root


def _build(root, **kwargs):
    kwargs.setdefault('pipeline', PIPELINE)
    return DATASETS.build(
        dict(type='mmssl.UnlabeledImageFolder', data_root=str(root), **kwargs))


def test_recursive_case_insensitive(folder):
    ds = _build(folder)
    names = [
        osp.relpath(ds.get_data_info(i)['img_path'], folder)
        for i in range(len(ds))
    ]
    assert names == ['z.jpeg', 'a/x.JPG', 'a/b/y.png', 'c/w.PnG']
    sample = ds[0]
    assert isinstance(sample['inputs'], torch.Tensor)
    assert sample['inputs'].shape == (3, 8, 8)
    assert 'gt_label' not in sample['data_samples']
    assert len(_build(folder, extensions=('png', ))) == 2


def test_missing_or_empty_root(tmp_path):
    missing = tmp_path / 'nowhere'
    with pytest.raises(FileNotFoundError) as info:
        _build(missing)
    assert str(missing) in str(info.value)
    assert 'data_root' in str(info.value)
    (tmp_path / 'empty' / 'sub').mkdir(parents=True)
    (tmp_path / 'empty' / 'sub' / 'a.txt').write_text('x')
    with pytest.raises(FileNotFoundError, match='no image files'):
        _build(tmp_path / 'empty')
    with pytest.raises(ValueError, match='on_corrupt'):
        _build(tmp_path / 'empty', on_corrupt='ignore')


def _add_corrupt(folder):
    bad = folder / 'a' / 'bad.png'
    bad.write_bytes(b'\x89PNG\r\n\x1a\n' + b'garbage' * 10)
    return str(bad)


def test_corrupt_file_error_mode(folder):
    bad = _add_corrupt(folder)
    ds = _build(folder)
    idx = [ds.get_data_info(i)['img_path'] for i in range(len(ds))].index(bad)
    with pytest.raises(RuntimeError) as info:
        ds[idx]
    assert bad in str(info.value)
    assert "on_corrupt='skip'" in str(info.value)


def test_corrupt_file_skip_mode(folder):
    bad = _add_corrupt(folder)
    ds = _build(folder, on_corrupt='skip')
    paths = [ds.get_data_info(i)['img_path'] for i in range(len(ds))]
    for i in range(len(ds)):
        assert ds[i]['inputs'].shape == (3, 8, 8)
        assert ds[i]['data_samples'].img_path != bad
    assert ds.num_corrupt == 1 and ds.corrupt_files == [bad]

    test_ds = _build(folder, on_corrupt='skip', test_mode=True)
    idx = paths.index(bad)
    assert test_ds[idx]['data_samples'].img_path == \
        paths[(idx + 1) % len(paths)]
    assert test_ds.num_corrupt == 1


def test_pipeline_errors_are_not_hidden(folder):

    def broken(results):
        raise KeyError('a bug in a transform')

    ds = _build(folder, on_corrupt='skip', pipeline=[broken])
    with pytest.raises(KeyError, match='a bug in a transform'):
        ds[0]
    assert ds.num_corrupt == 0


def _relpaths(ds, root):
    return [
        osp.relpath(ds.get_data_info(i)['img_path'], root)
        for i in range(len(ds))
    ]


def test_symlinks_followed_once_and_hidden_skipped(tmp_path):
    root = tmp_path / 'images'
    _image(root / 'a' / 'x.png', 10)
    _image(tmp_path / 'elsewhere' / 'e.png', 20)
    (root / 'a' / 'up').symlink_to(root, target_is_directory=True)  # a loop
    (root / 'again').symlink_to(root / 'a', target_is_directory=True)
    (root / 'outside').symlink_to(
        tmp_path / 'elsewhere', target_is_directory=True)
    (root / 'b.png').symlink_to(root / 'a' / 'x.png')  # the same image
    (root / 'gone.png').symlink_to(tmp_path / 'deleted.png')  # broken
    (root / '._x.png').write_bytes(b'\x00\x05\x16\x07AppleDouble')
    _image(root / '.thumbnails' / 't.png', 30)
    (root / '.DS_Store').write_bytes(b'\x00')

    ds = _build(root)
    # the link b.png comes first in walk order, so it stands for x.png
    assert _relpaths(ds, root) == ['b.png', 'outside/e.png']
    assert [ds[i]['inputs'].shape for i in range(len(ds))] == [(3, 8, 8)] * 2


@contextlib.contextmanager
def _logged_lines(path):
    """Also write mmengine's current logger to ``path`` (forked data-loader
    workers inherit the handler)."""
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    handler = logging.FileHandler(path, mode='a')
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()


def test_left_out_summary_is_logged_once(tmp_path):
    root = tmp_path / 'images'
    _image(root / 'a' / 'x.png')
    (root / 'a' / 'loop').symlink_to(root, target_is_directory=True)
    (root / '._x.png').write_bytes(b'junk')
    (root / 'x2.png').symlink_to(root / 'a' / 'x.png')
    (root / 'dead.png').symlink_to(tmp_path / 'nothing.png')
    log = tmp_path / 'log.txt'
    with _logged_lines(log):
        ds = _build(root)
    assert len(ds) == 1
    text = log.read_text()
    assert text.count('UnlabeledImageFolder: 1 images under') == 1
    for part in ('1 hidden files or folders', '1 folders reached again',
                 '1 links to images found already', '1 broken links'):
        assert part in text, text


def _loader(ds, num_workers, persistent=False):
    from torch.utils.data import DataLoader
    return DataLoader(
        ds,
        batch_size=1,
        shuffle=False,
        num_workers=num_workers,
        persistent_workers=persistent,
        collate_fn=lambda batch: batch)


def test_skipped_files_counted_over_workers_and_reported_once(
        folder, tmp_path):
    """Two workers, two epochs: each unreadable file is reported once and
    the main process sees the total."""
    bad = [_add_corrupt(folder)]
    other = folder / 'c' / 'a_bad.jpg'
    other.write_bytes(b'\xff\xd8\xff' + b'not a jpeg' * 5)
    bad.append(str(other))
    ds = _build(folder, on_corrupt='skip', test_mode=True)
    paths = [ds.get_data_info(i)['img_path'] for i in range(len(ds))]
    # with batch_size=1 the workers take turns: the two bad files sit at an
    # even and an odd index, so each worker meets one of them
    assert sorted(paths.index(b) % 2 for b in bad) == [0, 1]
    log = tmp_path / 'log.txt'
    with _logged_lines(log):
        for _ in range(2):  # new worker processes every epoch
            for batch in _loader(ds, num_workers=2):
                assert batch[0]['data_samples'].img_path not in bad
    err = log.read_text()
    assert err.count('skipping unreadable image') == 2, err
    for path in bad:
        assert err.count(f"'{path}'") == 1
    assert '2 of 6 images skipped so far' in err
    assert ds.num_corrupt == 2
    assert sorted(ds.corrupt_files) == sorted(bad)


def test_skip_record_copies_are_independent(folder):
    import copy
    import pickle
    bad = _add_corrupt(folder)
    ds = _build(folder, on_corrupt='skip', test_mode=True)
    ds[[ds.get_data_info(i)['img_path'] for i in range(len(ds))].index(bad)]
    assert ds.corrupt_files == [bad]
    clone = copy.deepcopy(ds)
    assert clone.corrupt_files == [bad]
    clone._skipped.mark(0)
    assert ds.num_corrupt == 1 and clone.num_corrupt == 2
    restored = pickle.loads(pickle.dumps(ds))
    assert restored.corrupt_files == [bad]
    subset = ds.get_subset([0, 1])
    assert subset.num_corrupt == 0 and len(subset) == 2


class _FlakyEntry:
    """A directory entry whose ``is_dir`` / ``is_file`` raise OSError."""

    def __init__(self, entry, fails):
        self._entry, self._fails = entry, fails
        self.name, self.path = entry.name, entry.path

    def is_dir(self):
        if 'is_dir' in self._fails:
            raise OSError('is_dir failed')
        return self._entry.is_dir()

    def is_file(self):
        if 'is_file' in self._fails:
            raise OSError('is_file failed')
        return self._entry.is_file()


def test_left_out_counts_and_unreadable_entries(tmp_path, monkeypatch):
    from mmssl.datasets import unlabeled_folder
    root = tmp_path / 'images'
    _image(root / 'a' / 'x.png')
    _image(root / 'weird.png')  # is_dir fails: still a file
    _image(root / 'flaky.png')  # is_file fails: left out as broken
    _image(root / 'u' / 'y.png')  # the folder cannot be listed
    (root / '._x.png').write_bytes(b'junk')
    _image(root / '.thumbs' / 't.png')
    (root / '.DS_Store').write_bytes(b'\x00')  # neither image nor folder
    (root / 'a' / 'loop').symlink_to(root, target_is_directory=True)
    (root / 'b').symlink_to(root / 'a', target_is_directory=True)
    (root / 'd1.png').symlink_to(tmp_path / 'nothing1.png')
    (root / 'd2.png').symlink_to(tmp_path / 'nothing2.png')
    (root / 'x2.png').symlink_to(root / 'a' / 'x.png')
    (root / 'x3.png').symlink_to(root / 'a' / 'x.png')
    scandir = unlabeled_folder.os.scandir
    fails = {'weird.png': ('is_dir', ), 'flaky.png': ('is_file', )}

    def flaky_scandir(path):
        if osp.basename(path) == 'u':
            raise PermissionError(13, 'Permission denied', path)
        return [
            _FlakyEntry(e, fails[e.name]) if e.name in fails else e
            for e in scandir(path)
        ]

    monkeypatch.setattr(unlabeled_folder.os, 'scandir', flaky_scandir)
    log = tmp_path / 'log.txt'
    with _logged_lines(log):
        ds = _build(root)
    assert _relpaths(ds, root) == ['weird.png', 'x2.png']
    line = [t for t in log.read_text().splitlines() if 'left out' in t]
    assert line == [
        f"UnlabeledImageFolder: 2 images under '{root}'; left out: 2 hidden "
        "files or folders (names starting with '.', e.g. '._x.jpg'), 2 "
        'folders reached again through symbolic links (loops or second '
        'links), 2 links to images found already, 4 broken links or '
        'unreadable folders'
    ]


def test_nothing_corrupt_before_the_file_list_is_loaded(folder):
    ds = _build(folder, lazy_init=True)
    assert ds.num_corrupt == 0 and ds.corrupt_files == []


def test_a_missing_root_is_named_as_missing(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        _build(tmp_path / 'nowhere')
    assert str(info.value).startswith(
        'UnlabeledImageFolder: the image folder `data_root` = '
        f"'{tmp_path / 'nowhere'}' does not exist or is not a folder. Set")
    (tmp_path / 'file.png').write_bytes(b'x')
    with pytest.raises(FileNotFoundError, match='is not a folder'):
        _build(tmp_path / 'file.png')
