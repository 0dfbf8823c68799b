"""The held-note probe of `rtclassify evaluate --held-notes`."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

import rtclassify
from rtclassify.errors import ParameterError
from rtclassify.train.data.fluid import SOUNDFONTS

pytest.importorskip("soxr")
import rtclassify.train.held_notes as H  # noqa: E402  (the project's own module: a failed import fails)
needs_fluidr3 = pytest.mark.skipif(not os.path.exists(SOUNDFONTS["FluidR3_GM"].path) or
                                   __import__("ctypes.util").util.find_library("fluidsynth") is None,
                                   reason="apt-get install fluidsynth fluid-soundfont-gm")


@pytest.fixture(scope="module")
def clf():
    from rtclassify import Classifier

    return Classifier.load()


@needs_fluidr3
def test_table_tags_notes_at_the_rendered_rate(clf, monkeypatch):
    seen = []
    tag = clf.tag

    def spy(x, sr):
        seen.append((len(x), sr))
        return tag(x, sr)

    monkeypatch.setattr(clf, "tag", spy)
    rows = H.held_note_table(clf, ["FluidR3_GM"], [40, 0], step=24, seconds=1.0)
    assert [(r["program"], r["tag"]) for r in rows] == [(40, "strings"), (0, "piano")]
    assert [k["key"] for k in rows[0]["keys"]] == [55, 79]  # violin range 55..100, every 24th key
    for r in rows:
        for k in r["keys"]:
            assert 0.0 <= k["prob"] <= k["top_prob"] <= 1.0 and k["top"] in clf.labels
    # the note lasts 1 s from 0.1 s, plus 0.3 s of tail: 1.4 s at the rate it is declared at
    assert all(n == round(1.4 * sr) for n, sr in seen) and len(seen) == 5
    # the shipped model reads the training soundfont's middle violin note as strings
    assert rows[0]["keys"][1]["top"] == "strings"


def test_bad_arguments_are_named(clf):
    with pytest.raises(ParameterError, match="soundfonts"):
        H.held_note_table(clf, ["NoSuchFont"], [40])
    with pytest.raises(ParameterError, match="programs"):
        H.held_note_table(clf, ["FluidR3_GM"], [128])
    with pytest.raises(ParameterError, match="programs"):
        H.held_note_table(clf, ["FluidR3_GM"], [120])  # an effect program has no tag
    with pytest.raises(ParameterError, match="step"):
        H.held_note_table(clf, ["FluidR3_GM"], [40], step=0)


@needs_fluidr3
def test_cli_writes_the_table(tmp_path, capsys):
    from rtclassify.cli import main

    bundle = str(Path(rtclassify.__file__).parent / "data" / "default_bundle")
    rc = main(["evaluate", bundle, "--held-notes", "FluidR3_GM", "--programs", "73", "--key-step", "30", "--out", str(tmp_path)])
    assert rc == 0
    rows = json.loads((tmp_path / "held_notes.json").read_text())
    assert rows[0]["program"] == 73 and len(rows[0]["keys"]) == 2
    assert "held notes" in capsys.readouterr().out
    assert main(["evaluate", "x", "--programs", "40", "--real", str(tmp_path)]) == 1
    assert main(["evaluate", "x", "--held-notes", "FluidR3_GM", "--programs", "violin"]) == 1
    err = capsys.readouterr().err
    assert "--programs goes with --held-notes" in err and "comma-separated GM program numbers" in err
    assert np.isfinite([k["prob"] for k in rows[0]["keys"]]).all()


def test_cli_checks_the_held_notes_before_any_other_work(tmp_path, capsys, monkeypatch):
    """A bad --held-notes or --programs is refused before the bundle's metrics are updated, the --data split is
    evaluated or the report folder is made (it was found only after all of that)."""
    import rtclassify.train.evaluate as E
    from rtclassify.cli import main

    monkeypatch.setattr(E, "evaluate_real", lambda *a, **k: pytest.fail("evaluated before checking --held-notes"))
    bundle = str(Path(rtclassify.__file__).parent / "data" / "default_bundle")
    real = Path(__file__).resolve().parents[2] / "shared" / "data" / "sms-tools"
    out = tmp_path / "report"
    for extra in (["--held-notes", "NoFont"], ["--held-notes", "FluidR3_GM", "--programs", "999"],
                  ["--held-notes", "FluidR3_GM", "--programs", "120"]):
        assert main(["evaluate", bundle, "--real", str(real), "--out", str(out), *extra]) == 1
        assert "held notes: " in capsys.readouterr().err
        assert not out.exists()
