# Copyright (c) mmssl contributors. All rights reserved.
"""Synthetic label noise: pure functions of a label array and a seed.

Every generator uses ``np.random.default_rng(seed)``, never the global
random state, and returns a new array:

- :func:`symmetric_noise`: DivideMix's protocol, ``round(rate * N)`` random
  items get a class drawn uniformly from all C classes (or from the C - 1
  other ones with ``exclude_true=True``).
- :func:`asymmetric_noise`: class-conditional flips along a mapping
  (:data:`CIFAR10_ASYM_MAPPING`, :data:`CIFAR100_ASYM_MAPPING`).
- :func:`instance_noise`: instance-dependent noise (IDN) of Xia et al.,
  "Part-dependent label noise", NeurIPS 2020, on per-item features such as
  :func:`image_features`.

:func:`transition_matrix` and :func:`noise_rate` measure the result.
"""
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from mmpretrain.datasets.categories import CIFAR100_CATEGORIES

from mmssl.utils.validation import check_choice, check_float, check_int

__all__ = [
    'CIFAR10_ASYM_MAPPING', 'CIFAR100_SUPERCLASSES', 'CIFAR100_ASYM_MAPPING',
    'cifar100_asym_mapping', 'resolve_mapping', 'symmetric_noise',
    'asymmetric_noise', 'instance_noise', 'transition_matrix', 'noise_rate',
    'image_features', 'read_rgb'
]

#: DivideMix's CIFAR-10 asymmetric noise: truck -> automobile,
#: bird -> airplane, deer -> horse, cat <-> dog (class indices).
CIFAR10_ASYM_MAPPING: Dict[int, int] = {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}

#: The 20 superclasses of CIFAR-100 (coarse label order of the CIFAR-100
#: files), each with its five fine classes as mmpretrain names them.
CIFAR100_SUPERCLASSES: Dict[str, Tuple[str, ...]] = {
    'aquatic_mammals': ('beaver', 'dolphin', 'otter', 'seal', 'whale'),
    'fish': ('aquarium_fish', 'flatfish', 'ray', 'shark', 'trout'),
    'flowers': ('orchid', 'poppy', 'rose', 'sunflower', 'tulip'),
    'food_containers': ('bottle', 'bowl', 'can', 'cup', 'plate'),
    'fruit_and_vegetables':
    ('apple', 'mushroom', 'orange', 'pear', 'sweet_pepper'),
    'household_electrical_devices':
    ('clock', 'keyboard', 'lamp', 'telephone', 'television'),
    'household_furniture': ('bed', 'chair', 'couch', 'table', 'wardrobe'),
    'insects': ('bee', 'beetle', 'butterfly', 'caterpillar', 'cockroach'),
    'large_carnivores': ('bear', 'leopard', 'lion', 'tiger', 'wolf'),
    'large_man-made_outdoor_things':
    ('bridge', 'castle', 'house', 'road', 'skyscraper'),
    'large_natural_outdoor_scenes':
    ('cloud', 'forest', 'mountain', 'plain', 'sea'),
    'large_omnivores_and_herbivores': ('camel', 'cattle', 'chimpanzee',
                                       'elephant', 'kangaroo'),
    'medium_mammals': ('fox', 'porcupine', 'possum', 'raccoon', 'skunk'),
    'non-insect_invertebrates': ('crab', 'lobster', 'snail', 'spider', 'worm'),
    'people': ('baby', 'boy', 'girl', 'man', 'woman'),
    'reptiles': ('crocodile', 'dinosaur', 'lizard', 'snake', 'turtle'),
    'small_mammals': ('hamster', 'mouse', 'rabbit', 'shrew', 'squirrel'),
    'trees': ('maple_tree', 'oak_tree', 'palm_tree', 'pine_tree',
              'willow_tree'),
    'vehicles_1': ('bicycle', 'bus', 'motorcycle', 'pickup_truck', 'train'),
    'vehicles_2': ('lawn_mower', 'rocket', 'streetcar', 'tank', 'tractor'),
}

LabelsLike = Union[Sequence[int], np.ndarray]
MappingLike = Union[Mapping[Any, Any], Sequence[Sequence[Any]]]


def cifar100_asym_mapping(grouping: str = 'superclass') -> Dict[int, int]:
    """CIFAR-100 asymmetric noise: each class flips to the next class of
    its group, circularly.

    Args:
        grouping (str): ``'superclass'`` (default): the groups are the 20
            real superclasses (:data:`CIFAR100_SUPERCLASSES`), members in
            the order of their fine class index. ``'index'``: blocks of five
            consecutive class indices, as several public noisy-label code
            bases build the matrix; since the CIFAR-100 fine classes are in
            alphabetical order, those blocks are not the superclasses
            (``apple, aquarium_fish, baby, bear, beaver``); offered for
            reproducing such results.

    Returns:
        dict[int, int]: source class index -> target class index, one entry
        for each of the 100 classes.
    """
    check_choice(grouping, 'grouping', 'cifar100_asym_mapping',
                 ('superclass', 'index'))
    if grouping == 'index':
        groups = [list(range(g, g + 5)) for g in range(0, 100, 5)]
    else:
        index = {name: i for i, name in enumerate(CIFAR100_CATEGORIES)}
        groups = [
            sorted(index[n] for n in members)
            for members in CIFAR100_SUPERCLASSES.values()
        ]
    mapping = {}
    for members in groups:
        for k, src in enumerate(members):
            mapping[src] = members[(k + 1) % len(members)]
    return dict(sorted(mapping.items()))


#: :func:`cifar100_asym_mapping` with the real superclasses.
CIFAR100_ASYM_MAPPING: Dict[int, int] = cifar100_asym_mapping('superclass')


def _check_labels(labels: LabelsLike, num_classes: int,
                  owner: str) -> np.ndarray:
    """``labels`` as a 1-D int64 array with values in [0, num_classes)."""
    check_int(num_classes, 'num_classes', owner, minimum=2)
    y = np.asarray(labels)
    if y.ndim != 1 or not (y.size == 0 or np.issubdtype(y.dtype, np.integer)):
        raise ValueError(f'{owner}: labels must be a 1-D array of class '
                         f'indices, got shape {y.shape} dtype {y.dtype}')
    y = y.astype(np.int64)
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(
            f'{owner}: labels must lie in [0, {num_classes}) for '
            f'num_classes={num_classes}, got [{y.min()}, {y.max()}]')
    return y


def _check_rate(rate: float, owner: str, key: str = 'rate') -> float:
    return check_float(
        rate,
        key,
        owner,
        low=0.,
        high=1.,
        inclusive=(True, False),
        note='fraction of noisy labels')


def resolve_mapping(mapping: MappingLike,
                    num_classes: int,
                    classes: Optional[Sequence[str]] = None,
                    owner: str = 'resolve_mapping',
                    key: str = 'mapping') -> Dict[int, int]:
    """A class mapping as ``{source index: target index}``.

    Args:
        mapping (dict | Sequence[pair]): ``{source: target}`` or a list of
            ``(source, target)`` pairs (configs and JSON files give lists);
            each class is an index or a name of ``classes``.
        num_classes (int): number of classes C.
        classes (Sequence[str], optional): class names, for names in
            ``mapping``.
        owner (str): the part named in error messages.
        key (str): the config key named in error messages.

    Returns:
        dict[int, int]: the mapping on class indices, sorted by source.

    Raises:
        ValueError: an unknown class name (the message lists the valid
            ones), an index outside [0, C), a malformed pair or a source
            given twice.
    """
    if isinstance(mapping, Mapping):
        pairs = list(mapping.items())
    elif isinstance(mapping, (list, tuple)):
        pairs = list(mapping)
    else:
        raise ValueError(f'{owner}: {key} must be a dict or a list of '
                         f'(source, target) pairs, got {mapping!r}')
    names = list(classes) if classes is not None else None

    def index(cls: Any) -> int:
        if isinstance(cls, str):
            if names is None or cls not in names:
                valid = names if names is not None else 'none (the data ' \
                    'set has no class names; use class indices)'
                raise ValueError(f'{owner}: {key} names the unknown class '
                                 f'{cls!r}; valid names: {valid}')
            return names.index(cls)
        return check_int(
            cls,
            f'{key} class',
            owner,
            minimum=0,
            maximum=num_classes - 1,
            note='a class index or name')

    out: Dict[int, int] = {}
    for pair in pairs:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ValueError(f'{owner}: every entry of {key} must be a '
                             f'(source, target) pair, got {pair!r}')
        src, dst = index(pair[0]), index(pair[1])
        if src in out:
            raise ValueError(f'{owner}: {key} gives source class {pair[0]!r}'
                             ' more than once')
        out[src] = dst
    return dict(sorted(out.items()))


def symmetric_noise(labels: LabelsLike,
                    num_classes: int,
                    rate: float,
                    seed: int = 0,
                    exclude_true: bool = False) -> np.ndarray:
    """Symmetric label noise, DivideMix's protocol.

    ``round(rate * N)`` distinct items are chosen at random and get a class
    drawn uniformly from all C classes, so a chosen item keeps its label
    with probability 1/C: the realised flip rate is ``rate * (1 - 1/C)``
    (e.g. 0.45 for ``rate=0.5`` on CIFAR-10). With ``exclude_true=True`` the
    new class is drawn from the C - 1 other classes and the flip rate is
    ``round(rate * N) / N``. (DivideMix floors ``rate * N``; rounding differs
    by at most one item.)

    Args:
        labels (Sequence[int] | np.ndarray): (N,) clean class indices.
        num_classes (int): C >= 2.
        rate (float): share of the items redrawn, in [0, 1).
        seed (int): seed of ``np.random.default_rng``. Defaults to 0.
        exclude_true (bool): draw from the other classes only.

    Returns:
        np.ndarray: (N,) int64 noisy labels; ``labels`` is not modified.
    """
    owner = 'symmetric_noise'
    y = _check_labels(labels, num_classes, owner)
    rate = _check_rate(rate, owner)
    rng = np.random.default_rng(seed)
    n = len(y)
    k = int(round(rate * n))
    idx = rng.choice(n, size=k, replace=False)
    noisy = y.copy()
    if exclude_true:
        noisy[idx] = (y[idx] + rng.integers(1, num_classes, size=k)) \
            % num_classes
    else:
        noisy[idx] = rng.integers(0, num_classes, size=k)
    return noisy


def asymmetric_noise(labels: LabelsLike,
                     num_classes: int,
                     rate: float,
                     mapping: MappingLike,
                     seed: int = 0) -> np.ndarray:
    """Class-conditional (asymmetric) label noise.

    Each item whose class is a source of ``mapping`` flips to the target
    class with probability ``rate`` (independently per item); items of
    other classes never change. The expected transition matrix is the
    identity except ``T[s, s] = 1 - rate``, ``T[s, mapping[s]] = rate``.
    (DivideMix instead flips the items of a random ``rate * N`` subset of
    all items; the expected matrix is the same.)

    Args:
        labels (Sequence[int] | np.ndarray): (N,) clean class indices.
        num_classes (int): C >= 2.
        rate (float): flip probability, in [0, 1).
        mapping (dict | Sequence[pair]): ``{source: target}`` class
            indices, e.g. :data:`CIFAR10_ASYM_MAPPING`. Pairs are applied at
            once, so ``{3: 5, 5: 3}`` swaps.
        seed (int): seed of ``np.random.default_rng``. Defaults to 0.

    Returns:
        np.ndarray: (N,) int64 noisy labels.
    """
    owner = 'asymmetric_noise'
    y = _check_labels(labels, num_classes, owner)
    rate = _check_rate(rate, owner)
    mapping = resolve_mapping(mapping, num_classes, owner=owner)
    lut = np.arange(num_classes)
    for src, dst in mapping.items():
        lut[src] = dst
    rng = np.random.default_rng(seed)
    flip = np.isin(y, list(mapping)) & (rng.random(len(y)) < rate)
    noisy = y.copy()
    noisy[flip] = lut[y[flip]]
    return noisy


def instance_noise(labels: LabelsLike,
                   features: np.ndarray,
                   num_classes: int,
                   rate: float,
                   seed: int = 0,
                   norm_std: float = 0.1) -> np.ndarray:
    """Instance-dependent label noise (Xia et al. 2020, the common IDN
    generator).

    The recipe of the authors' ``get_instance_noisy_label``, vectorised:

    1. per-item flip rate ``q_i`` ~ normal(rate, norm_std) truncated to
       [0, 1];
    2. per class y a random projection ``W_y`` ~ N(0, 1) of shape (D, C);
    3. per item the flip distribution ``softmax(x_i W_{y_i})`` over the
       classes with the true class excluded (its logit set to -inf), so the
       preferred wrong classes depend on the item's features;
    4. ``P(noisy = y_i) = 1 - q_i``, ``P(noisy = c) = q_i * softmax_c``
       for c != y_i, sampled once per item.

    The realised flip rate is the mean of the ``q_i``, about ``rate`` (the
    truncation moves it by less than 0.01 for rates in [0.2, 0.8]).
    ``rate=0`` returns the labels unchanged (the truncated normal would
    still flip about 8% of them). The features are used as given; the
    reference feeds normalised pixels, for which the logits are large and
    each item has in effect one preferred wrong class (see
    :func:`image_features`).

    Args:
        labels (Sequence[int] | np.ndarray): (N,) clean class indices.
        features (np.ndarray): (N, D) per-item features, e.g. flattened
            standardised pixels.
        num_classes (int): C >= 2.
        rate (float): mean flip rate, in [0, 1).
        seed (int): seed of ``np.random.default_rng``. Defaults to 0.
        norm_std (float): std of the flip-rate distribution. Defaults to
            0.1.

    Returns:
        np.ndarray: (N,) int64 noisy labels.
    """
    from scipy.stats import truncnorm
    owner = 'instance_noise'
    y = _check_labels(labels, num_classes, owner)
    rate = _check_rate(rate, owner)
    norm_std = check_float(
        norm_std, 'norm_std', owner, low=0., inclusive=(False, True))
    x = np.asarray(features)
    if x.ndim != 2 or x.shape[0] != len(y):
        raise ValueError(f'{owner}: features must be (N, D) with N = '
                         f'{len(y)} labels, got shape {x.shape}')
    if not np.isfinite(x).all():
        raise ValueError(f'{owner}: features contain NaN or infinity')
    noisy = y.copy()
    if rate == 0 or len(y) == 0:
        return noisy
    rng = np.random.default_rng(seed)
    q = truncnorm.rvs(
        (0 - rate) / norm_std, (1 - rate) / norm_std,
        loc=rate,
        scale=norm_std,
        size=len(y),
        random_state=rng)
    u = rng.random(len(y))
    for c in range(num_classes):
        w = rng.standard_normal((x.shape[1], num_classes))
        sel = np.flatnonzero(y == c)
        if not len(sel):
            continue
        logits = x[sel].astype(np.float64) @ w
        logits[:, c] = -np.inf
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        p *= (q[sel] / p.sum(1))[:, None]
        p[:, c] = 1 - q[sel]
        choice = (u[sel, None] >= np.cumsum(p, 1)).sum(1)
        noisy[sel] = np.minimum(choice, num_classes - 1)
    return noisy


def transition_matrix(clean: LabelsLike, noisy: LabelsLike,
                      num_classes: int) -> np.ndarray:
    """Empirical noise transition matrix.

    Returns:
        np.ndarray: (C, C) float64, ``T[i, j]`` = share of the items of
        clean class i whose noisy label is j; each row sums to 1, a class
        without items has a row of zeros.
    """
    owner = 'transition_matrix'
    clean = _check_labels(clean, num_classes, owner)
    noisy = _check_labels(noisy, num_classes, owner)
    if clean.shape != noisy.shape:
        raise ValueError(f'{owner}: clean and noisy labels differ in length '
                         f'({len(clean)} vs {len(noisy)})')
    counts = np.zeros((num_classes, num_classes))
    np.add.at(counts, (clean, noisy), 1)
    rows = counts.sum(1, keepdims=True)
    return np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)


def noise_rate(clean: LabelsLike, noisy: LabelsLike) -> float:
    """Share of the items whose noisy label differs from the clean one."""
    clean, noisy = np.asarray(clean), np.asarray(noisy)
    if clean.shape != noisy.shape:
        raise ValueError(f'noise_rate: clean and noisy labels differ in '
                         f'shape ({clean.shape} vs {noisy.shape})')
    return float((clean != noisy).mean()) if clean.size else 0.


def read_rgb(info: dict, size: Optional[int]) -> np.ndarray:
    """The image of a data info as (H, W, 3) uint8 RGB, resized to
    ``size`` x ``size`` unless None.

    ``img`` arrays (mmpretrain's CIFAR items) are taken as RGB, as those
    loaders store them; ``img_path`` files are read in RGB order.
    """
    import mmcv
    if 'img' in info:
        img = np.asarray(info['img'])
    elif 'img_path' in info:
        img = mmcv.imread(info['img_path'], channel_order='rgb')
        if img is None:
            raise FileNotFoundError(f'cannot read {info["img_path"]!r}')
    else:
        raise ValueError('the data set has items without img or img_path; '
                         'cannot read its images')
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.shape[2] == 4:
        img = img[..., :3]
    if size is not None and img.shape[:2] != (size, size):
        shrink = img.shape[0] > size or img.shape[1] > size
        img = mmcv.imresize(
            img, (size, size), interpolation='area' if shrink else 'bilinear')
    return np.ascontiguousarray(img, dtype=np.uint8)


def image_features(items: Sequence[dict], size: int = 32) -> np.ndarray:
    """Per-item features for :func:`instance_noise`: the image resized to
    ``size`` x ``size``, scaled to [0, 1], standardised per channel over the
    items (as the reference's ``Normalize``) and flattened.

    Args:
        items (Sequence[dict]): data infos with ``img`` (an (H, W[, 3])
            array, e.g. mmpretrain's CIFAR10) or ``img_path``.
        size (int): side length. Defaults to 32.

    Returns:
        np.ndarray: (N, 3 * size * size) float32.
    """
    feats = np.empty((len(items), size, size, 3), dtype=np.float32)
    for i, info in enumerate(items):
        feats[i] = read_rgb(info, size)
    feats /= 255.
    mean = feats.mean(axis=(0, 1, 2))
    std = feats.std(axis=(0, 1, 2))
    feats -= mean
    feats /= np.where(std > 0, std, 1.)
    return feats.reshape(len(items), -1)
