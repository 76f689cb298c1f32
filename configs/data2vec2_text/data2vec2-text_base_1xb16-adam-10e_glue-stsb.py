# data2vec2-text_base_1xb16-adam-10e_glue-mrpc.py on STS-B (similarity regression, Pearson and Spearman correlation).
#   python tools/train.py configs/data2vec2_text/data2vec2-text_base_1xb16-adam-10e_glue-stsb.py
_base_ = ['./data2vec2-text_base_1xb16-adam-10e_glue-mrpc.py']

train_dataloader = dict(
    dataset=dict(task='stsb', ann_file='data/glue/STS-B/train.tsv'))
val_dataloader = dict(
    dataset=dict(task='stsb', ann_file='data/glue/STS-B/dev.tsv'))
test_dataloader = val_dataloader
val_evaluator = dict(scores=('pearson', 'spearman'))
test_evaluator = val_evaluator
model = dict(head=dict(num_classes=1, regression=True))
default_hooks = dict(checkpoint=dict(save_best='pearson'))
