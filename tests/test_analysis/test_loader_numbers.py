# Copyright (c) mmssl contributors. All rights reserved.
"""The loader benchmark's arithmetic on fake clocks and fake loaders: the
first batch, the windows, epochs, shutdown, rates and the best worker count,
the per-transform breakdown, wrappers, and the loader settings."""
import inspect
import types

import pytest
import torch
from mmengine.config import Config

from mmssl.analysis import loader_benchmark as lb

from test_loader_benchmark import folder_config, write_jpegs  # isort:skip


class Clock:
    """A fake ``perf_counter``: returns ``now``, which the test moves."""

    def __init__(self, steps=()):
        self.now = 0.
        self.steps = list(steps)

    def __call__(self):
        if self.steps:  # a scripted reading
            self.now = self.steps.pop(0)
        return self.now


@pytest.fixture
def clock(monkeypatch):

    def install(steps=()):
        fake = Clock(steps)
        monkeypatch.setattr(lb, 'time',
                            types.SimpleNamespace(perf_counter=fake))
        return fake

    return install


class Sampler:

    def __init__(self):
        self.epochs = []

    def set_epoch(self, epoch):
        self.epochs.append(epoch)


class Workers:

    def __init__(self):
        self.shut = 0

    def _shutdown_workers(self):
        self.shut += 1


class Loader:
    """A list of batches with a sampler and a worker iterator."""

    def __init__(self, sizes, iterator=None):
        self.batches = [dict(data_samples=[None] * n) for n in sizes]
        self.sampler = Sampler()
        self._iterator = iterator

    def __iter__(self):
        return iter(self.batches)


def test_defaults():
    params = inspect.signature(lb.benchmark_loader).parameters
    assert {
        k: params[k].default
        for k in ('num_workers_list', 'batches', 'warmup', 'repeat',
                  'batch_size', 'seed', 'transform_samples', 'progress')
    } == dict(
        num_workers_list=(0, 1, 2),
        batches=20,
        warmup=5,
        repeat=3,
        batch_size=None,
        seed=0,
        transform_samples=8,
        progress=False)
    params = inspect.signature(lb.time_transforms).parameters
    assert (params['num_samples'].default, params['seed'].default) == (8, 0)


def test_windows_first_batch_epochs_and_shutdown(clock):
    # start 10; warm-up batch: first batch at 11.5, window starts at 12;
    # windows end at 15 and 19
    clock([10., 11.5, 12., 15., 19.])
    workers = Workers()
    loader = Loader([4, 4, 3], workers)
    ticks = []
    timing = lb._time_loader(loader, 2, 1, 2, lambda: ticks.append(1))
    assert timing == dict(first_batch_s=1.5, times=[3., 4.], images=[7, 8])
    assert len(ticks) == 5
    assert loader.sampler.epochs == [1]  # a second epoch began
    assert workers.shut == 1


def test_first_batch_without_warmup(clock):
    clock([10., 10.25, 12.])
    timing = lb._time_loader(Loader([2]), 2, 0, 1, lambda: None)
    assert timing['first_batch_s'] == .25
    assert timing['times'] == [2.]
    assert timing['images'] == [4]


def test_epochs_advance_one_by_one(clock):
    clock()
    loader = Loader([1])
    lb._time_loader(loader, 1, 3, 1, lambda: None)
    assert loader.sampler.epochs == [1, 2, 3]


def test_shutdown_only_through_a_worker_iterator(clock):
    clock()
    lb._time_loader(Loader([1], object()), 1, 0, 1, lambda: None)  # no-op


def test_an_empty_loader_is_an_error(clock):
    clock()
    with pytest.raises(ValueError, match='yields no batch'):
        lb._time_loader(Loader([]), 1, 1, 1, lambda: None)


def test_batch_images_edge_cases():
    # an empty data_samples list does not count; the inputs do
    assert lb.batch_images(dict(data_samples=[], inputs=torch.zeros(3))) == 3
    assert lb.batch_images(
        dict(data_samples=None, inputs=[torch.zeros(1)] * 3)) == 3


def test_summary_at_parity_is_the_step():
    assert lb.loader_summary(10., 10.).startswith('the step limits')
    assert '50%' in lb.loader_summary(5., 10.)


def test_loader_cfg_drops_prefetch_without_workers():
    cfg = Config(
        dict(
            train_dataloader=dict(
                batch_size=4,
                num_workers=8,
                prefetch_factor=3,
                dataset=dict(type='x'))))
    main = lb._loader_cfg(cfg, 0, None)
    assert 'prefetch_factor' not in main and main.num_workers == 0
    assert main.batch_size == 4
    workers = lb._loader_cfg(cfg, 2, 6)
    assert workers.prefetch_factor == 3 and workers.num_workers == 2
    assert workers.batch_size == 6 and workers.persistent_workers
    assert cfg.train_dataloader.num_workers == 8  # not changed


def test_repeat_must_be_positive(tmp_path):
    cfg = folder_config(write_jpegs(tmp_path / 'images', num=4))
    with pytest.raises(ValueError, match='repeat must be an integer >= 1'):
        lb.benchmark_loader(cfg, repeat=0)


def test_rates_best_and_progress(tmp_path, monkeypatch, capsys):
    """Rates from the windows, the best worker count, build time and the
    progress bar's length, with the iteration itself faked."""
    cfg = folder_config(write_jpegs(tmp_path / 'images', num=4))
    timings = iter([
        dict(first_batch_s=.5, times=[2., 1., 4.], images=[8, 8, 6]),
        dict(first_batch_s=.7, times=[1., 1., 2.], images=[8, 8, 8]),
    ])
    calls = []

    def fake_time_loader(loader, batches, warmup, repeat, tick):
        calls.append((batches, warmup, repeat))
        for _ in range(warmup + batches * repeat):
            tick()
        return next(timings)

    bars = []

    class Bar:

        def __init__(self, total):
            self.total, self.done = total, 0
            bars.append(self)

        def update(self):
            self.done += 1

    monkeypatch.setattr(lb, '_time_loader', fake_time_loader)
    monkeypatch.setattr('mmengine.utils.ProgressBar', Bar)
    # build of each loader: 1 s, then 3 s
    fake = Clock([0., 1., 10., 13.])
    monkeypatch.setattr(lb, 'time', types.SimpleNamespace(perf_counter=fake))
    result = lb.benchmark_loader(
        cfg, (0, 1, 0),
        batches=4,
        warmup=2,
        repeat=3,
        transform_samples=0,
        progress=True)
    assert calls == [(4, 2, 3)] * 2
    assert (bars[0].total, bars[0].done) == (2 * (2 + 4 * 3), 28)
    assert capsys.readouterr().out == '\n'
    one, two = result['runs']
    assert one['img_per_s_windows'] == [4., 8., 1.5]
    assert one['img_per_s'] == 4.
    assert one['batches_per_s'] == 2.
    assert one['s_per_batch'] == .5
    assert one['images'] == 22 and one['first_batch_s'] == .5
    assert (one['build_s'], two['build_s']) == (1., 3.)
    assert two['img_per_s'] == 8. and two['batches_per_s'] == 4.
    assert result['best'] is two
    assert result['transforms'] is None
    assert result['num_samples'] == 4
    # without the bar nothing is printed
    timings = iter([dict(first_batch_s=.5, times=[1.], images=[2])])
    fake.steps = [0., 1.]
    lb.benchmark_loader(cfg, 0, batches=1, repeat=1, transform_samples=0)
    assert capsys.readouterr().out == ''


# --------------------------------------------------------------- transforms
class Compose:

    def __init__(self, transforms, seen):
        self.transforms = transforms
        self.seen = seen

    def __call__(self, results):
        self.seen.append(results['idx'])
        for t in self.transforms:
            results = t(results)
            if results is None:
                return None
        return results


class Costly:
    """A transform that takes ``ms`` on the fake clock; drops ``drop``."""

    def __init__(self, fake, ms, drop=()):
        self.fake, self.ms, self.drop = fake, ms, drop

    def __call__(self, results):
        self.fake.now += self.ms / 1e3
        return None if results['idx'] in self.drop else results


class First(Costly):
    pass


class Second(Costly):
    pass


class Third(Costly):
    pass


class FakeSet:

    def __init__(self, pipeline, size=3, info=True):
        self.pipeline = pipeline
        self.size = size
        if info:
            self.get_data_info = lambda i: dict(idx=i)

    def __len__(self):
        return self.size


def _fake_build(monkeypatch, dataset):
    monkeypatch.setattr(lb, 'config_dataset', lambda cfg, split: dataset)


def _cfg(pipeline):
    return Config(
        dict(train_dataloader=dict(dataset=dict(type='x', pipeline=pipeline))))


def test_transform_shares_by_hand(clock, monkeypatch):
    fake = clock()
    seen = []
    pipe = Compose([
        First(fake, 1.),
        Second(fake, 2., drop=(1, )),
        Third(fake, 5.),
    ], seen)
    _fake_build(monkeypatch, FakeSet(pipe))
    result = lb.time_transforms(
        _cfg([dict(type='A'), dict(type='B'),
              dict(type='C')]), num_samples=5)
    assert seen == [0]  # one untimed pass, of the first sample
    steps = result['steps']
    assert [s['name'] for s in steps] == ['First', 'Second', 'Third']
    assert [s['type'] for s in steps] == ['A', 'B', 'C']
    assert [s['samples'] for s in steps] == [3, 3, 2]
    assert [s['ms_per_sample'] for s in steps] == pytest.approx([1, 2, 5])
    assert [s['share'] for s in steps] == pytest.approx([12.5, 25, 62.5])
    assert result['total_ms_per_sample'] == pytest.approx(8)
    assert result['img_per_s'] == pytest.approx(125)
    assert result['bottleneck'] == 'Third'
    assert result['samples'] == 3
    # a pipeline written differently from the built one: class names
    result = lb.time_transforms(_cfg([dict(type='A')]), num_samples=1)
    assert [s['type'] for s in result['steps']] == ['First', 'Second', 'Third']


def test_no_samples_no_numbers(clock, monkeypatch):
    fake = clock()
    _fake_build(monkeypatch, FakeSet(Compose([First(fake, 1.)], [])))
    result = lb.time_transforms(_cfg([dict(type='A')]), num_samples=0)
    assert result['steps'] == [
        dict(name='First', type='A', ms_per_sample=0., share=0., samples=0)
    ]
    assert result['total_ms_per_sample'] is None
    assert result['img_per_s'] is None and result['bottleneck'] is None
    assert result['samples'] == 0


def test_no_pipeline_or_no_data_info(clock, monkeypatch):
    fake = clock()
    empty = dict(
        steps=[],
        total_ms_per_sample=None,
        img_per_s=None,
        bottleneck=None,
        samples=0)
    _fake_build(monkeypatch, FakeSet(None))
    assert lb.time_transforms(_cfg([])) == empty
    _fake_build(monkeypatch,
                FakeSet(Compose([First(fake, 1.)], []), info=False))
    assert lb.time_transforms(_cfg([dict(type='A')])) == empty


def test_pipeline_through_wrappers():
    pipe = Compose([], [])
    inner = types.SimpleNamespace(pipeline=pipe)
    assert lb._pipeline_of(inner) is pipe
    # RepeatDataset-like, ConcatDataset-like, and a pipeline that is not a
    # Compose on the wrapper itself
    assert lb._pipeline_of(types.SimpleNamespace(dataset=inner)) is pipe
    assert lb._pipeline_of(types.SimpleNamespace(datasets=[inner, 0])) is pipe
    assert lb._pipeline_of(types.SimpleNamespace(pipeline=[1],
                                                 dataset=inner)) is pipe
    assert lb._pipeline_of(types.SimpleNamespace(datasets=[])) is None
    assert lb._pipeline_of(types.SimpleNamespace()) is None
    deep = inner
    for _ in range(7):  # the pipeline eight levels down is found
        deep = types.SimpleNamespace(dataset=deep)
    assert lb._pipeline_of(deep) is pipe
    assert lb._pipeline_of(types.SimpleNamespace(dataset=deep)) is None
