"""Training side of rtclassify (the ``train`` extra): data synthesis, training, evaluation, export.

Nothing here is imported by the runtime. :mod:`rtclassify.train.data` builds
the labelled training set (``rtclassify data build``).
"""

#: the largest learning rate the trainers accept (far above any that trains this network; more only diverges)
MAX_LR = 10.0
#: seeds are 0 .. MAX_SEED (what every random generator of a run takes)
MAX_SEED = 2 ** 32 - 1
#: the NT-Xent temperatures contrastive pretraining takes (below them the scaled similarities overflow)
MIN_TEMPERATURE, MAX_TEMPERATURE = 1e-3, 100.0
#: the longest time budget a training or pretraining run takes, minutes (a week)
MAX_MINUTES = 7 * 24 * 60
#: the most epochs, and training windows per epoch, a run takes
MAX_EPOCHS = MAX_WINDOWS = 10 ** 9
#: the most torch threads a run takes
MAX_THREADS = 256
#: the most hours of unlabelled audio pretraining loads
MAX_PRETRAIN_HOURS = 1000.0
