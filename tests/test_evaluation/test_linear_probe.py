# Copyright (c) mmssl contributors. All rights reserved.
import pytest
import torch

from mmssl.evaluation.functional import (linear_probe, standardize_features,
                                         topk_accuracy)


def blobs(num_per_class, num_classes, dims, seed, spread=0.3):
    gen = torch.Generator().manual_seed(seed)
    centres = torch.eye(num_classes, dims) * 3.0
    labels = torch.arange(num_classes).repeat_interleave(num_per_class)
    feats = centres[labels] + spread * torch.randn(
        len(labels), dims, generator=gen)
    return feats * 50.0 + 10.0, labels  # scaled and shifted on purpose


def test_standardize_uses_train_statistics():
    train = torch.tensor([[1.0, 10.0], [3.0, 10.0]])
    test = torch.tensor([[2.0, 12.0]])
    tr, te = standardize_features(train, test)
    assert torch.allclose(tr, torch.tensor([[-1.0, 0.0], [1.0, 0.0]]))
    assert te[0, 0] == pytest.approx(0.0)
    # a constant training column maps to 0 (its std is clamped, not 0)
    assert torch.isfinite(te).all()


def test_topk_accuracy_by_hand():
    logits = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]])
    labels = torch.tensor([1, 1, 0])
    assert topk_accuracy(logits, labels, 1) == pytest.approx(100 / 3)
    assert topk_accuracy(logits, labels, 2) == pytest.approx(200 / 3)
    assert topk_accuracy(logits, labels, 10) == pytest.approx(100.0)


def test_separable_blobs_reach_100_percent():
    # 3 informative and 3 pure-noise dimensions: after standardisation the
    # noise is as large as the signal, and the probe must still ignore it
    train, y_train = blobs(16, 3, 6, seed=0)
    test, y_test = blobs(8, 3, 6, seed=1)
    out = linear_probe(train, y_train, test, y_test, num_classes=3)
    assert out['top1'] == pytest.approx(100.0)
    assert out['train_top1'] == pytest.approx(100.0)
    assert out['train_loss'] < 0.1
    assert 'top5' not in out


def test_chunking_and_scale_do_not_matter():
    train, y_train = blobs(6, 6, 8, seed=2, spread=2.0)
    test, y_test = blobs(3, 6, 8, seed=3, spread=2.0)
    a = linear_probe(train, y_train, test, y_test, 6, max_iter=20)
    b = linear_probe(
        train, y_train, test, y_test, 6, max_iter=20, chunk_size=5)
    c = linear_probe(train * 1e3, y_train, test * 1e3, y_test, 6, max_iter=20)
    assert a == linear_probe(train, y_train, test, y_test, 6, max_iter=20)
    for other in (b, c):
        assert other['top1'] == a['top1'] and other['top5'] == a['top5']
        assert other['train_loss'] == pytest.approx(a['train_loss'], rel=1e-3)
    assert 0 <= a['top1'] <= a['top5'] <= 100


def test_weight_decay_shrinks_the_fit():
    train, y_train = blobs(6, 3, 4, seed=4, spread=1.0)
    loose = linear_probe(train, y_train, train, y_train, 3, weight_decay=0.)
    tight = linear_probe(train, y_train, train, y_train, 3, weight_decay=1.)
    assert tight['train_loss'] > loose['train_loss']


def test_bad_arguments_raise():
    train, labels = blobs(4, 2, 3, seed=0)
    with pytest.raises(ValueError):
        linear_probe(train, labels, train[:, :2], labels, 2)
    with pytest.raises(ValueError):
        linear_probe(train, labels, train, labels, 1)
    with pytest.raises(ValueError):
        linear_probe(train, labels[:3], train, labels, 2)


def test_standardize_divides_both_sets_by_the_train_std():
    # column 0: mean 2, std 2 (not 1, where dividing and multiplying agree)
    train = torch.tensor([[0.0], [4.0]])
    tr, te = standardize_features(train, torch.tensor([[6.0], [-2.0]]))
    assert tr.flatten().tolist() == [-1.0, 1.0]
    assert te.flatten().tolist() == [2.0, -2.0]
    assert tr.dtype == te.dtype == torch.float32


def test_standardize_std_floor_is_1e_6():
    # a column of std 1.5e-6 is divided by its own std (a floor of 2e-6
    # would give -0.75 and 0.75)
    train = torch.tensor([[0.0], [3e-6]], dtype=torch.float64)
    tr, _ = standardize_features(train, train)
    assert tr.flatten().tolist() == pytest.approx([-1.0, 1.0], rel=1e-4)
    tr, _ = standardize_features(train, train, eps=1e-5)
    assert tr.flatten().tolist() == pytest.approx([-0.15, 0.15], rel=1e-4)


def test_topk_accuracy_defaults_to_top1_and_clips_k_to_the_classes():
    logits = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]])
    labels = torch.tensor([1, 1, 0])
    assert topk_accuracy(logits, labels) == pytest.approx(100 / 3)
    # 2 rows of 4 classes, the label scored lowest: only k = 4 finds it
    wide = torch.tensor([[4., 3., 2., 1.], [1., 2., 3., 0.]])
    low = torch.tensor([3, 3])
    assert topk_accuracy(wide, low, 3) == 0.0
    assert topk_accuracy(wide, low, 10) == 100.0


def test_solver_settings_and_defaults(monkeypatch):
    import inspect
    seen = {}
    lbfgs = torch.optim.LBFGS

    def spy(params, **kwargs):
        seen.update(kwargs)
        return lbfgs(params, **kwargs)

    monkeypatch.setattr(torch.optim, 'LBFGS', spy)
    train, labels = blobs(6, 3, 4, seed=4, spread=1.0)
    out = linear_probe(train, labels, train, labels, 3)
    assert seen == dict(
        lr=1.0,
        max_iter=100,
        history_size=10,
        tolerance_grad=1e-7,
        tolerance_change=1e-9,
        line_search_fn='strong_wolfe')
    # the default weight decay is 1e-3
    assert out == linear_probe(
        train, labels, train, labels, 3, weight_decay=1e-3)
    assert out['train_loss'] < linear_probe(
        train, labels, train, labels, 3, weight_decay=2e-3)['train_loss']
    assert inspect.signature(
        linear_probe).parameters['chunk_size'].default == 8192


def test_set_shapes_at_the_edges():
    train, labels = blobs(4, 2, 3, seed=0)
    with pytest.raises(ValueError, match='2-D'):
        linear_probe(train[None], labels, train, labels, 2)
    with pytest.raises(ValueError, match='2-D'):
        linear_probe(train, labels, train[None], labels, 2)
    # the test labels alone wrong
    with pytest.raises(ValueError, match='labels must be 1-D'):
        linear_probe(train, labels, train, labels[:3], 2)
    with pytest.raises(ValueError, match='non-empty'):
        linear_probe(train[:0], labels[:0], train, labels, 2)
    with pytest.raises(ValueError, match='non-empty'):
        linear_probe(train, labels, train[:0], labels[:0], 2)
    # one feature on each side is enough
    out = linear_probe(train[:1], labels[:1], train[:1], labels[:1], 2)
    assert out['top1'] == 100.0


@pytest.mark.parametrize('weight_decay', [0.05, 0.3])
def test_optimum_matches_scikit_learn(weight_decay):
    """The probe minimises ``mean CE + wd / 2 ||W||^2`` with a free bias:
    scikit-learn's multinomial logistic regression with ``C = 1 / (wd N)``
    (its intercept is not penalised either) reaches the same training loss
    and predictions, on unbalanced classes where the bias matters."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    train, labels = blobs(6, 3, 4, seed=4, spread=1.5)
    keep = [i for i in range(len(labels)) if not (labels[i] == 2 and i % 3)]
    train, labels = train[keep], labels[keep]  # 6 / 6 / 2 images
    test, test_labels = blobs(5, 3, 4, seed=5, spread=1.5)
    out = linear_probe(
        train, labels, test, test_labels, 3, weight_decay=weight_decay)
    x, x_test = (t.double().numpy() for t in standardize_features(train, test))
    n = len(labels)
    ref = LogisticRegression(
        C=1 / (weight_decay * n), tol=1e-10,
        max_iter=10000).fit(x, labels.numpy())
    prob = ref.predict_proba(x)
    ce = -np.log(prob[np.arange(n), labels.numpy()]).mean()
    assert out['train_loss'] == pytest.approx(ce, rel=1e-4)
    assert out['train_top1'] == pytest.approx(
        100 * (prob.argmax(1) == labels.numpy()).mean())
    assert out['top1'] == pytest.approx(
        100 * (ref.predict(x_test) == test_labels.numpy()).mean())


def test_top5_from_five_classes():
    train, labels = blobs(4, 5, 6, seed=6, spread=1.0)
    out = linear_probe(train, labels, train, labels, 5)
    assert out['top5'] == 100.0
    # 10 classes, every test label shifted to the next class: top-1 is 0,
    # top-5 counts only the labels ranked in the first 5 of 10
    train, labels = blobs(3, 10, 12, seed=7, spread=1.0)
    out = linear_probe(train, labels, train, (labels + 1) % 10, 10)
    assert out['top1'] == 0.0 and 0.0 < out['top5'] < 100.0
