"""Mapping files: defaults, the shipped example, and errors that name the line and the key."""

from __future__ import annotations

import pytest

from rtclassify.errors import ConfigError
from rtclassify.sinks.mapping import Mapping, MidiMapping, example_path, load_mapping

LABELS = ("piano", "organ", "guitar", "bass", "strings", "brass", "woodwind", "mallet", "drums", "synth", "singing",
          "speech")


def write(tmp_path, text: str):
    p = tmp_path / "map.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_default_mapping_notes_and_ccs_follow_label_order():
    m = Mapping.default(LABELS)
    assert [m.midi.tags[t].note for t in LABELS] == list(range(36, 48))
    assert [m.midi.tags[t].cc for t in LABELS] == list(range(20, 32))
    assert m.midi.channel == 1
    assert m.osc.tag_address("piano") == "/rtclassify/tag/piano"
    assert m.osc.on_address == "/rtclassify/on" and m.osc.off_address == "/rtclassify/off"
    assert m.osc.technique_address("vibrato") == "/rtclassify/vibrato"
    assert m.osc.technique_address("pitch") == "/rtclassify/pitch"
    assert not m.decoder and m.decoder.as_dict() == {}


def test_velocity_and_level_scaling():
    mm = MidiMapping(velocity_min=20, velocity_max=100)
    assert mm.velocity(0.0) == 20 and mm.velocity(1.0) == 100 and mm.velocity(0.5) == 60
    assert MidiMapping().velocity(0.0) == 1  # never 0: that would be a note-off
    assert MidiMapping.level(0.0) == 0 and MidiMapping.level(1.0) == 127 and MidiMapping.level(2.0) == 127


def test_shipped_example_loads_and_overrides(tmp_path):
    m = load_mapping(example_path(), LABELS)
    assert m.source == str(example_path())
    assert m.midi.tags["speech"].cc is None and m.midi.tags["speech"].note == 47
    assert m.osc.tag_address("singing") == "/voice/singing"
    assert m.osc.tag_address("piano") == "/rtclassify/tag/piano"
    # the example keeps the bundle's decoder (its values replaced the shipped model's smoothing, durations and
    # speech and singing thresholds for anyone who started from it) and only sets the level rate
    assert m.decoder.as_dict() == {"level_rate": 20.0}
    assert m.midi.technique.vibrato_rate_cc == 103
    # the technique addresses follow a changed prefix (the example spelled out /rtclassify/pitch and the rest)
    shown = example_path().read_text().replace('prefix = "/rtclassify"', 'prefix = "/show"')
    m = load_mapping(write(tmp_path, shown), LABELS)
    assert m.osc.technique_address("pitch") == "/show/pitch" and m.osc.tag_address("piano") == "/show/tag/piano"


def test_example_decoder_section_is_accepted_by_the_decoder(tmp_path):
    from rtclassify.detect.decoder import DecoderConfig

    m = load_mapping(example_path(), LABELS)
    base = DecoderConfig(labels=LABELS, thresholds={t: (0.5, 0.3) for t in LABELS})
    cfg = base.override(m.decoder.as_dict())
    assert cfg.thresholds == base.thresholds and cfg.min_on_s == base.min_on_s
    assert cfg.level_rate == pytest.approx(20)
    # its commented keys, uncommented, are accepted as written
    text = "\n".join(line[2:] if line.startswith(("# smoothing", "# attack_s", "# min_o", "# [decoder.tags",
                                                   "# on =", "# off =")) else line
                     for line in example_path().read_text().splitlines())
    cfg = base.override(load_mapping(write(tmp_path, text), LABELS).decoder.as_dict())
    assert cfg.thresholds["speech"] == pytest.approx((0.717, 0.502)) and cfg.min_off_s == pytest.approx(0.2)


def test_partial_file_keeps_defaults(tmp_path):
    m = load_mapping(write(tmp_path, "[midi]\nchannel = 10\n[midi.tags.organ]\nnote = 62\n"), LABELS)
    assert m.midi.channel == 10
    assert m.midi.tags["organ"].note == 62 and m.midi.tags["organ"].cc == 21
    assert m.midi.tags["piano"].note == 36


@pytest.mark.parametrize(
    "text, line, key, words",
    [
        ("[midi]\nchannel = 17\n", 2, "midi.channel", "1-16"),
        ("# comment\n\n[midi.tags.piano]\n  note = 200\n", 4, "midi.tags.piano.note", "0-127"),
        ("[midi]\nchanel = 1\n", 2, "midi.chanel", "unknown key"),
        ("[midi.tags.pianno]\nnote = 3\n", 1, "midi.tags.pianno", "unknown tag 'pianno'"),
        ("[decoder.tags.piano]\non = 0.3\noff = 0.5\n", 3, "decoder.tags.piano.off", "hysteresis"),
        ("[osc]\nbundle = true\nprefix = \"no-slash\"\n", 3, "osc.prefix", "OSC address"),
        ("[midi]\nnotes = \"yes\"\n", 2, "midi.notes", "true or false"),
        ("midi.tags.organ = { note = 36 }\n", 1, "midi.tags.organ.note", "also used by midi.tags.piano.note"),
        ("[decoder]\nsmoothing = \"mean\"\n", 2, "decoder.smoothing", "ema"),
        ("[osc.tags]\nspeech = 3\n", 2, "osc.tags.speech", "OSC address"),
    ],
)
def test_bad_values_name_file_line_and_key(tmp_path, text, line, key, words):
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as ei:
        load_mapping(p, LABELS)
    msg = str(ei.value)
    assert msg.startswith(f"{p}:{line}: {key}: "), msg
    assert words in msg


def test_collision_with_a_default_note_says_how_to_fix(tmp_path):
    p = write(tmp_path, "[midi.tags.organ]\nnote = 60\n")
    with pytest.raises(ConfigError, match=r":2: midi.tags.organ.note: note 60 is also used by "
                                          r"midi.technique.vibrato_note \(default; set it to another value or -1\)"):
        load_mapping(p, LABELS)
    m = load_mapping(write(tmp_path, "[midi.tags.organ]\nnote = 60\n[midi.technique]\nvibrato_note = -1\n"), LABELS)
    assert m.midi.tags["organ"].note == 60 and m.midi.technique.vibrato_note is None


def test_a_technique_note_or_cc_moved_onto_a_tags_is_refused_not_renumbering_the_tags(tmp_path):
    """The tags' default notes and CCs skip the technique's default ones only: moving the vibrato note onto
    guitar's (38) moved guitar to 39 and every later tag up by one, without a word."""
    for text, said in (("[midi.technique]\nvibrato_note = 38\n", "midi.technique.vibrato_note: note 38 is also used "
                                                                   "by midi.tags.guitar.note (default"),
                       ("[midi.technique]\npitch_cc = 25\n", "midi.technique.pitch_cc: CC 25 is also used by "
                                                              "midi.tags.brass.cc (default")):
        with pytest.raises(ConfigError, match=":2: " + said.replace(".", r"\.").replace("(", r"\(")):
            load_mapping(write(tmp_path, text), LABELS)
    m = load_mapping(write(tmp_path, "[midi.technique]\nvibrato_note = 100\npitch_cc = 110\n"), LABELS)
    assert [m.midi.tags[t].note for t in LABELS] == list(range(36, 48))  # moved out of the way: tags unchanged
    assert [m.midi.tags[t].cc for t in LABELS] == list(range(20, 32))


@pytest.mark.parametrize("text, line, key, said", [
    ('[osc.tags]\npiano = "/rtclassify/on"\n', 2, "osc.tags.piano",
     "/rtclassify/on is also the address of the on messages (from osc.prefix)"),
    ('[osc.tags]\nsinging = "/rtclassify/tag/speech"\n', 2, "osc.tags.singing",
     "/rtclassify/tag/speech is also the address of speech's level (default)"),
    ('[osc.tags]\npiano = "/rtclassify/pitch"\n', 2, "osc.tags.piano",
     "/rtclassify/pitch is also the address of the pitch messages (default)"),
    ('[osc.tags]\npiano = "/x"\n[osc.technique]\nvibrato = "/x"\n', 4, "osc.technique.vibrato",
     "/x is also the address of piano's level"),
])
def test_an_osc_address_two_kinds_of_message_share_is_refused(tmp_path, text, line, key, said):
    """A receiver would take one tag's level for another's, or a float for a tag name."""
    with pytest.raises(ConfigError) as info:
        load_mapping(write(tmp_path, text), LABELS)
    assert str(info.value) == f"{tmp_path / 'map.toml'}:{line}: {key}: {said}"
    # messages that are not sent share no address
    load_mapping(write(tmp_path, '[osc]\nlevels = false\n[osc.tags]\npiano = "/rtclassify/on"\n'), LABELS)


def test_a_technique_note_may_take_a_tag_note_that_is_not_sent(tmp_path):
    """With `notes = false` the tags send no notes, so the vibrato note may take one of theirs (and with
    `cc = false` the pitch CC a tag's CC); it was refused as a shared note."""
    m = load_mapping(write(tmp_path, "[midi]\nnotes = false\ncc = false\n[midi.technique]\nvibrato_note = 36\n"
                                     "pitch_cc = 20\n"), LABELS)
    assert m.midi.technique.vibrato_note == 36 and m.midi.tags["piano"].note == 36 and not m.midi.notes
    assert not MidiMapping(notes=False, cc=False, tags={"piano": m.midi.tags["piano"]}, technique=m.midi.technique).notes


def test_an_osc_mapping_built_in_code_refuses_an_address_two_kinds_of_message_share():
    from rtclassify.sinks.mapping import OscMapping

    with pytest.raises(ConfigError, match=r"OscMapping: /rtclassify/on is the address of the on messages "
                                          r"\(from osc\.prefix\) and the address of piano's level"):
        OscMapping(tags={"piano": "/rtclassify/on"})
    with pytest.raises(ConfigError, match=r"/x is the address of piano's level and the address of the pitch"):
        OscMapping(tags={"piano": "/x"}, technique_addresses={"pitch": "/x"})
    OscMapping(tags={"piano": "/x"}, technique_addresses={"pitch": "/x"}, technique=False)  # pitch is not sent


def test_a_mapping_built_in_code_refuses_a_note_two_outputs_share():
    """The MIDI sink keeps one state per note: two outputs on one note would end each other's notes, so a
    MidiMapping made in code is checked as a mapping file is."""
    from rtclassify.sinks.mapping import MidiTag, MidiTechnique

    with pytest.raises(ConfigError, match=r"note 60 is used by midi.tags.piano.note and midi.technique.vibrato_note"):
        MidiMapping(tags={"piano": MidiTag(note=60, cc=None)})
    with pytest.raises(ConfigError, match=r"CC 20 is used by midi.tags.a.cc and midi.tags.b.cc"):
        MidiMapping(tags={"a": MidiTag(note=36, cc=20), "b": MidiTag(note=37, cc=20)})
    # a disabled tag or an output that is off (None) shares nothing; the defaults share nothing
    MidiMapping(tags={"piano": MidiTag(note=60, cc=None, enabled=False)})
    MidiMapping(tags={"piano": MidiTag(note=60, cc=None)}, technique=MidiTechnique(vibrato_note=None))
    m = Mapping.default([f"t{i}" for i in range(40)])
    assert len({t.note for t in m.midi.tags.values()}) == 40


def test_toml_syntax_error_names_the_line(tmp_path):
    p = write(tmp_path, "[midi]\nchannel = 1\n[osc\n")
    with pytest.raises(ConfigError, match=r"invalid TOML: .*line 3"):
        load_mapping(p, LABELS)


def test_missing_file_is_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read mapping file .*nope.toml"):
        load_mapping(tmp_path / "nope.toml", LABELS)


def test_minus_one_switches_a_message_off(tmp_path):
    m = load_mapping(write(tmp_path, "[midi.tags.piano]\nnote = -1\n[midi.technique]\npitch_cc = -1\n"), LABELS)
    assert m.midi.tags["piano"].note is None and m.midi.tags["piano"].cc == 20
    assert m.midi.technique.pitch_cc is None


def test_root_prefix_gives_single_slash_addresses(tmp_path):
    osc = load_mapping(write(tmp_path, "[osc]\nprefix = \"/\"\n"), LABELS).osc
    assert (osc.on_address, osc.off_address, osc.tag_address("piano"), osc.technique_address("pitch")) == (
        "/on", "/off", "/tag/piano", "/pitch")
    assert osc.stream_address(osc.tag_address("piano"), 3) == "/3/tag/piano"
    osc = load_mapping(write(tmp_path, "[osc]\nprefix = \"/show/\"\n"), LABELS).osc
    assert osc.tag_address("piano") == "/show/tag/piano" and osc.stream_address("/show/on", 2) == "/show/2/on"


def test_a_lone_off_is_checked_against_the_models_on_threshold(tmp_path):
    th = {t: (0.6, 0.4) for t in LABELS}
    path = write(tmp_path, "[decoder]\nmin_on_s = 0.1\n\n[decoder.tags.speech]\noff = 0.9\n")
    with pytest.raises(ConfigError) as exc:
        load_mapping(path, LABELS, th)
    assert str(exc.value) == (f"{path}:5: decoder.tags.speech.off: must be <= the model's on threshold (0.6) for "
                              f"hysteresis, got 0.9; set on as well")
    assert load_mapping(path, LABELS).decoder.tags == {"speech": {"off": 0.9}}  # without thresholds: not checked
    ok = load_mapping(write(tmp_path, "[decoder.tags.speech]\noff = 0.5\n"), LABELS, th)
    assert ok.decoder.tags == {"speech": {"off": 0.5}}


def test_the_readme_example_loads_and_its_error_example_is_what_the_loader_says(tmp_path):
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    start = readme.index("### The mapping file")
    block = readme[readme.index("```toml\n", start) + len("```toml\n"):]
    block = block[:block.index("```")]
    m = load_mapping(write(tmp_path, block), LABELS)
    assert m.midi.tags["drums"].note == 50 and m.osc.prefix == "/show"
    bad = block.replace("note = 50", "note = 300", 1)
    with pytest.raises(ConfigError) as exc:
        load_mapping(write(tmp_path, bad), LABELS)
    msg = str(exc.value).replace(str(tmp_path / "map.toml"), "mapping.toml")
    assert msg in " ".join(readme[start:].split())


def test_an_absurdly_long_osc_address_is_refused_at_load(tmp_path):
    with pytest.raises(ConfigError, match=r"map.toml:2: osc.prefix: must be at most 512 characters long, got 600"):
        load_mapping(write(tmp_path, "[osc]\nprefix = \"/" + "a" * 599 + "\"\n"), LABELS)
