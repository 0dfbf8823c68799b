"""Your own tags from your own examples: few-shot heads on the tagger's embedding, fine-tuning,
and self-supervised pretraining.

Learning a tag (runtime dependencies only: numpy, ONNX Runtime, soxr, soundfile)::

    from rtclassify import Classifier

    clf = Classifier.load()
    clf2 = clf.learn("my_pedal", positives=["pedal1.wav", "pedal2.wav"], negatives=["dry.wav"])
    clf2.save("my_bundle")            # a normal bundle: `rtclassify listen --bundle my_bundle`

How it works (:func:`learn_tag`):

1. Every example goes through the bundle's own streaming path
   (:class:`~rtclassify.engine.session.StreamSession`: resampling, the native
   frontend, the window schedule), and the bundle's ONNX ``embedding`` output
   is computed for each model window (:mod:`.embeddings`).
2. Windows of the positive examples whose reported frame is sounding (within
   40 dB of the example's loudest frame and above -70 dBFS, the data recipe's
   labelling rule) are positives, and so are the sounding windows of a copy
   of each example mixed into generic music, speech or singing (so the tag
   also holds when the sound plays with others); every window of the negative
   examples and of the generic negative audio (:mod:`.negatives`) is a
   negative.
3. A logistic regression (L2, Newton's method, balanced classes; strength
   and threshold chosen by cross-validation over the examples) is fitted in
   a second or two (:mod:`.head`) on the embedding followed by two per-band
   log-mel means of the window (``features="embedding+mel"``, the default;
   ``"embedding"`` for the embedding alone; RESULTS.md says why).
4. A new bundle is written (:mod:`.bundle_ext`): its ONNX graph is the
   original graph, byte for byte, plus ``ReduceMean``/``Slice``/``Concat``
   for the head's input, ``MatMul -> Add -> Sigmoid``, and a ``Concat`` of
   the original ``probs`` with the new probability. The original tags' outputs are therefore unchanged.
   ``model.json`` gains the label, its thresholds and a ``learned_tags``
   section (provenance of the examples, the head, its cross-validated quality).

The training side (``train`` extra, torch): :mod:`.finetune` (``rtclassify
train --data FOLDER``), :mod:`.pretrain` (``rtclassify pretrain``, contrastive
self-supervised pretraining) and :mod:`.fewshot` (the few-shot evaluation).
"""

from __future__ import annotations

from .._lazy import lazy_getattr

__all__ = ["learn_tag", "save_classifier", "MIN_POSITIVE_EXAMPLES", "MIN_EXAMPLE_SECONDS"]

_LAZY = {
    "learn_tag": ("rtclassify.learn.learner", "learn_tag"),
    "save_classifier": ("rtclassify.learn.learner", "save_classifier"),
    "MIN_POSITIVE_EXAMPLES": ("rtclassify.learn.examples", "MIN_POSITIVE_EXAMPLES"),
    "MIN_EXAMPLE_SECONDS": ("rtclassify.learn.examples", "MIN_EXAMPLE_SECONDS"),
}

__getattr__ = lazy_getattr(__name__, _LAZY, globals())
