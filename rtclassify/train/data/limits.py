"""The values of a build that ``rtclassify data build``'s options are checked against.

Kept apart from :mod:`.build` (which loads the synthesizers and scipy) so that the command line
can check its options with the values the build itself uses, without importing the build.
"""

SPLITS = ("train", "val", "test")
#: Soundfonts that ``--extra-soundfonts`` may add to the training timbres (train and val splits).
SOUNDFONTS_EXTRA = ("OPL3_FM", "FreePats", "FreePats_pitched", "STK")
#: Non-music kinds that ``--extra-nonmusic`` may add to the train and val splits: water drops that
#: ring and knock, and crackle, whose random transients the shipped models read as drums or speech.
NONMUSIC_EXTRA = ("drips", "crackle")
#: Most hours of audio one build may ask for (``--hours``).
MAX_HOURS = 10000.0
#: Shortest and longest clip (``--clip-seconds``): a clip must hold the model's training windows, and one
#: clip is rendered in memory at the FluidSynth rate, with every stem.
MIN_CLIP_SECONDS = 1.0
MAX_CLIP_SECONDS = 600.0
