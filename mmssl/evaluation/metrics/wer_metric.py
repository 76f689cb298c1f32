# Copyright (c) mmssl contributors. All rights reserved.
"""Word / character error rates of a speech recogniser."""
from typing import Any, Dict, List, Optional, Sequence

from mmengine.evaluator import BaseMetric
from mmengine.structures import BaseDataElement

from mmssl.registry import METRICS
from ..functional.wer import char_errors, word_errors

__all__ = ['WERMetric']


@METRICS.register_module()
class WERMetric(BaseMetric):
    """Corpus WER and CER in percent (``mmssl.WERMetric``).

    Reads each data sample's ``pred_text`` (the model's ``predict``) and
    ``transcript`` (the reference, packed by :class:`mmssl.PackAudioInputs`)
    and reports ``asr/wer`` and ``asr/cer``: summed edit distances over
    summed reference words / characters, x 100 (see
    :mod:`mmssl.evaluation.functional.wer`). Words are split at whitespace;
    case matters (the vocabulary is upper case).

    Args:
        collect_device (str): ``'cpu'`` or ``'gpu'``. Defaults to 'cpu'.
        prefix (str, optional): prefix of the metric names. Defaults to
            ``'asr'``.
    """

    default_prefix: Optional[str] = 'asr'

    def process(self, data_batch: Any, data_samples: Sequence) -> None:
        for sample in data_samples:
            if isinstance(sample, BaseDataElement):
                sample = sample.to_dict()
            for key in ('pred_text', 'transcript'):
                if key not in sample:
                    raise KeyError(
                        f'mmssl.WERMetric: a data sample has no {key!r} '
                        f'(keys: {sorted(sample)}); the recogniser\'s '
                        'predict() sets pred_text and the pipeline '
                        '(mmssl.PackAudioInputs) carries transcript')
            ref, hyp = str(sample['transcript']), str(sample['pred_text'])
            self.results.append(word_errors(ref, hyp) + char_errors(ref, hyp))

    def compute_metrics(self, results: List) -> Dict[str, float]:
        words = sum(r[1] for r in results)
        chars = sum(r[3] for r in results)
        if not words:
            raise ValueError('mmssl.WERMetric: the references hold no words '
                             f'({len(results)} samples); WER is undefined')
        return dict(
            wer=100. * sum(r[0] for r in results) / words,
            cer=100. * sum(r[2] for r in results) / chars)
