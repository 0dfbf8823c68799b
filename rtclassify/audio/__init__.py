"""Audio input: files (:mod:`.files`), resampling (:mod:`.resample`), live devices (:mod:`.devices`, :mod:`.sources`).

Submodules are imported on use, so that importing this package loads nothing
heavy (PortAudio in particular).
"""
