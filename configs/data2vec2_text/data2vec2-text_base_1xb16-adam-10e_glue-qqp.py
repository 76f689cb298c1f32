# data2vec2-text_base_1xb16-adam-10e_glue-mrpc.py on QQP (duplicate questions, accuracy and F1).
#   python tools/train.py configs/data2vec2_text/data2vec2-text_base_1xb16-adam-10e_glue-qqp.py
_base_ = ['./data2vec2-text_base_1xb16-adam-10e_glue-mrpc.py']

train_dataloader = dict(
    dataset=dict(task='qqp', ann_file='data/glue/QQP/train.tsv'))
val_dataloader = dict(
    dataset=dict(task='qqp', ann_file='data/glue/QQP/dev.tsv'))
test_dataloader = val_dataloader
val_evaluator = dict(scores=('accuracy', 'f1'))
test_evaluator = val_evaluator
model = dict(head=dict(num_classes=2))
default_hooks = dict(checkpoint=dict(save_best='f1'))
