# data2vec2-text_base_1xb16-adam-10e_glue-mrpc.py on QNLI (question-answering entailment, accuracy).
#   python tools/train.py configs/data2vec2_text/data2vec2-text_base_1xb16-adam-10e_glue-qnli.py
_base_ = ['./data2vec2-text_base_1xb16-adam-10e_glue-mrpc.py']

train_dataloader = dict(
    dataset=dict(task='qnli', ann_file='data/glue/QNLI/train.tsv'))
val_dataloader = dict(
    dataset=dict(task='qnli', ann_file='data/glue/QNLI/dev.tsv'))
test_dataloader = val_dataloader
val_evaluator = dict(scores=('accuracy', ))
test_evaluator = val_evaluator
model = dict(head=dict(num_classes=2))
default_hooks = dict(checkpoint=dict(save_best='accuracy'))
