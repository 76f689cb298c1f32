# Copyright (c) mmssl contributors. All rights reserved.
"""Measuring methods against each other: the training-step benchmark,
the input-pipeline (loader) benchmark,
pretraining under a time budget (time to accuracy), schedule rescaling and
the pretrain -> convert -> fine-tune -> test transfer pipeline, and the
cost of Large-UniDet's class hierarchy."""
from .benchmark import (benchmark_configs, build_train_model,
                        count_train_flops, measure_matmul_peak)
from .loader_benchmark import (batch_images, benchmark_loader, loader_summary,
                               time_transforms)
from .multitask_benchmark import (benchmark_multitask, make_subtuning_tasks,
                                  task_block_sets)
from .schedule import iters_per_epoch, rescale_schedule
from .step_memory import StepMemory, machine_info, state_bytes
from .subtuning_search import SearchError, SubsetEvaluator
from .subtuning_select import (finetuning_profile, greedy_search, plot_greedy,
                               plot_profile, write_snippet)
from .synthetic_batch import make_synthetic_batch
from .time_to_accuracy import (TimeBudgetHook, compare_time_to_accuracy,
                               pretrain_under_budget, probe_iter_time,
                               time_to_reach)
from .unidet_cost import (hier_and_flat_detectors, hierarchy_cost,
                          interleaved_median_ms)

__all__ = [
    'StepMemory', 'TimeBudgetHook', 'benchmark_configs', 'build_train_model',
    'compare_time_to_accuracy', 'count_train_flops', 'iters_per_epoch',
    'machine_info', 'make_synthetic_batch', 'measure_matmul_peak',
    'pretrain_under_budget', 'probe_iter_time', 'rescale_schedule',
    'state_bytes', 'time_to_reach'
]
__all__ += ['benchmark_multitask', 'make_subtuning_tasks', 'task_block_sets']
__all__ += [
    'SearchError', 'SubsetEvaluator', 'finetuning_profile', 'greedy_search',
    'plot_greedy', 'plot_profile', 'write_snippet'
]
__all__ += [
    'batch_images', 'benchmark_loader', 'loader_summary', 'time_transforms'
]
__all__ += [
    'hier_and_flat_detectors', 'hierarchy_cost', 'interleaved_median_ms'
]
