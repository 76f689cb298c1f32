# The tiny ALBERT pretraining with the corpus streamed from its text file
# (mmssl.AlbertStreamingPretrainDataset): documents are read line by line,
# tokenised on the fly and shuffled in a buffer of 256 documents, so the
# corpus never has to fit in memory (for corpora larger than memory; the
# embedded one is small). Iteration-based: an iterable data set has no
# sampler; the data loader restarts after each pass (about 93 batches here)
# and the data set counts its passes, each with a new shuffle, new segment
# boundaries and SOP coins.
#   python tools/train.py configs/albert/albert_tiny_1xb32-lamb-20kiter-stream_embedded-text.py
# For a real corpus: type='mmssl.AlbertStreamingPretrainDataset',
# ann_file=['data/bookwiki/train-*.txt'], tokenizer='data/bookwiki/spm30k.model'
_base_ = ['./albert_tiny_1xb32-lamb-20e_embedded-text.py']

max_iters = 20000
warmup_iters = 200

train_dataloader = dict(
    _delete_=True,
    batch_size=32,
    num_workers=1,
    persistent_workers=True,
    sampler=None,  # an iterable data set shards and shuffles itself
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='mmssl.EmbeddedTextStreamingDataset',
        data_root={{_base_.data_root}},
        split='train',
        vocab_size={{_base_.vocab_size}},
        max_seq_length={{_base_.max_seq_length}},
        short_seq_prob=0.1,
        truncate_long_sentences=True,
        buffer_docs=256,
        shuffle=True,
        # pairs of one pass (2,950-3,010 for seeds 0-2): only sizes the
        # length that mmengine's LoggerHook asks of the data loader
        num_samples=3000,
        seed=0,
        pipeline={{_base_.train_pipeline}}))

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.01,
        by_epoch=False,
        begin=0,
        end=warmup_iters),
    dict(
        type='PolyLR',
        power=1.0,
        eta_min=0.,
        by_epoch=False,
        begin=warmup_iters,
        end=max_iters),
]
train_cfg = dict(
    _delete_=True,
    type='IterBasedTrainLoop',
    max_iters=max_iters,
    val_interval=2000)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    checkpoint=dict(
        type='CheckpointHook', by_epoch=False, interval=2000,
        max_keep_ckpts=2))
log_processor = dict(by_epoch=False)
