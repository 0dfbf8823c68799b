"""Training side of rtclassify (the ``train`` extra): data synthesis, training, evaluation, export.

Nothing here is imported by the runtime. :mod:`rtclassify.train.data` builds
the labelled training set (``rtclassify data build``).
"""
