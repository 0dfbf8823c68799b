"""The few-shot command's arguments and its data folder's record (about.json), without rendering or evaluating."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _fewshot import fake_renderers
from rtclassify.errors import ParameterError
from rtclassify.learn import fewshot


class _NoRendering:
    """Stands for the renderers' WorkerContext: nothing here may render."""

    def __init__(self, cache=None):
        raise AssertionError("the renderers were started")


@pytest.fixture
def no_work(monkeypatch):
    """Any data build, rendering or model load fails the test."""

    def refuse(*a, **k):
        raise AssertionError("work started before the arguments were checked")

    monkeypatch.setattr("rtclassify.train.data.build.WorkerContext", _NoRendering)
    monkeypatch.setattr(fewshot, "build_fewshot_data", refuse)
    monkeypatch.setattr("rtclassify.model.classifier.Classifier.load", refuse)


def _folder(path, seed=11):
    """A data folder that holds the telephone task, recorded in about.json."""
    path.mkdir()
    (path / "telephone.npz").write_bytes(b"")
    about = {"seed": seed, "pool": 3, "n_query": 2, "query_seconds": fewshot.QUERY_SECONDS,
             "tasks": [{"name": "telephone"}]}
    (path / "about.json").write_text(json.dumps(about))
    return path


@pytest.mark.parametrize("args, message", [
    (["--ks", "1,x"], "argument --ks: expected comma-separated whole numbers"),
    (["--ks", "0"], "argument --ks: each k must be >= 1"),
    (["--ks", "-1"], "argument --ks: each k must be >= 1"),
    (["--ks", "5,5"], "argument --ks: k 5 is given twice"),
    (["--repeats", "0"], "argument --repeats: must be >= 1"),
    (["--tasks", "telefone"], "argument --tasks: task 'telefone' is not one of fret_noise,"),
    (["--tasks", "telephone,"], "argument --tasks: expected a comma-separated list of fret_noise,"),
    (["--seed", "-1"], "argument --seed: must be >= 0"),
])
def test_fewshot_bad_arguments_are_one_line_errors_before_any_work(tmp_path, capsys, no_work, args, message):
    with pytest.raises(SystemExit) as exc:
        fewshot.main(["--data", str(tmp_path / "data"), "--out", str(tmp_path / "r"), "--tasks", "telephone",
                      "--pitch-shifts", "none"] + args)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "data").exists()


def test_fewshot_arguments_as_read():
    a = fewshot.build_parser().parse_args(["--data", "d", "--out", "o", "--ks", "1, 10", "--repeats", "2",
                                           "--tasks", "cello,telephone"])
    assert a.ks == (1, 10) and a.repeats == 2 and a.tasks == ["cello", "telephone"] and a.seed is None
    a = fewshot.build_parser().parse_args(["--data", "d", "--out", "o"])
    assert a.ks == (1, 5, 10) and a.repeats == 5 and a.tasks is None


def test_fewshot_refuses_a_seed_the_data_folder_was_not_rendered_with(tmp_path, capsys, no_work):
    data = _folder(tmp_path / "data")
    before = (data / "about.json").read_bytes()
    rc = fewshot.main(["--data", str(data), "--out", str(tmp_path / "r"), "--tasks", "telephone", "--seed", "12",
                       "--ks", "1", "--repeats", "1"])
    err = capsys.readouterr().err
    assert rc == 1 and len(err.strip().splitlines()) == 1
    assert str(data) in err and "seed 11" in err and "--data" in err
    assert (data / "about.json").read_bytes() == before
    assert not list(tmp_path.glob("r*"))


def test_fewshot_data_record_describes_only_what_was_rendered(tmp_path, monkeypatch):
    data = _folder(tmp_path / "data", seed=12)
    before = (data / "about.json").read_bytes()
    by_name = {t.name: t for t in fewshot.TASKS}
    monkeypatch.setattr("rtclassify.train.data.build.WorkerContext", _NoRendering)
    # a setting other than the folder's is refused, the folder's own (or none) is taken
    for kw in ({"seed": 11}, {"pool": 15}, {"n_query": 10}):
        with pytest.raises(ParameterError, match=f"{list(kw)[0]}.*{data}"):
            fewshot.build_fewshot_data(data, tasks=[by_name["telephone"]], progress=False, **kw)
    assert fewshot.data_settings(data) == {"seed": 12, "pool": 3, "n_query": 2,
                                           "query_seconds": fewshot.QUERY_SECONDS}
    assert fewshot.data_settings(tmp_path / "new")["seed"] == 11
    # nothing to render: the record is left as it is (and no renderer starts)
    fewshot.build_fewshot_data(data, seed=12, tasks=[by_name["telephone"]], progress=False)
    assert (data / "about.json").read_bytes() == before

    # a new task is rendered with the folder's settings and added to its record
    calls = fake_renderers(monkeypatch)
    fewshot.build_fewshot_data(data, tasks=[by_name["telephone"], by_name["cello"]], progress=False)
    tseed = 12 * 1000 + fewshot.task_index("cello")
    assert calls == [("support", "cello", tseed, 3), ("queries", "cello", tseed, 2)]
    about = json.loads((data / "about.json").read_text())
    assert (about["seed"], about["pool"], about["n_query"]) == (12, 3, 2)
    assert [t["name"] for t in about["tasks"]] == ["telephone", "cello"]


def test_fewshot_evaluation_checks_its_parameters_first(tmp_path):
    data = _folder(tmp_path / "data")
    for kw, match in (({"ks": (0,)}, "ks"), ({"ks": (1, -1)}, "ks"), ({"ks": ("1",)}, "ks"),
                      ({"repeats": 0}, "repeats"), ({"tasks": ["telefone"]}, "telefone.npz.*telephone"),
                      ({"tasks": []}, "tasks")):
        with pytest.raises(ParameterError, match=match):
            fewshot.evaluate_fewshot(None, data, [], **kw)


def test_fewshot_report_names_add_the_suffixes(tmp_path, monkeypatch):
    """--out runs/k1.v2 writes runs/k1.v2.json and .md, not runs/k1.json; --out runs/k1 writes runs/k1.json."""
    data = _folder(tmp_path / "data")

    class Context:
        def __init__(self, cache=None):
            pass

        def close(self):
            pass

    monkeypatch.setattr("rtclassify.train.data.build.WorkerContext", Context)

    class Bundle:
        path = "bundle"

    class Clf:
        bundle = Bundle()

    report = {"results": [{"task": "telephone", "source": "same/mix", "k": 1, "repeat": 0, "encoder": "supervised",
                           "auc": 0.9, "bacc": 0.8}],
              "settings": {"ks": [1], "repeats": 1, "encoders": ["supervised"]}}
    monkeypatch.setattr("rtclassify.model.classifier.Classifier.load", lambda *a, **k: Clf())
    monkeypatch.setattr(fewshot, "onnx_encoder", lambda clf, name: fewshot.Encoder(name, None))
    monkeypatch.setattr(fewshot, "evaluate_fewshot", lambda *a, **k: json.loads(json.dumps(report)))
    out = tmp_path / "runs"
    for name in ("k1", "k1.v2"):
        assert fewshot.main(["--data", str(data), "--out", str(out / name), "--tasks", "telephone",
                             "--ks", "1", "--repeats", "1"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["k1.json", "k1.md", "k1.v2.json", "k1.v2.md"]
    assert fewshot.report_paths("a/b.c") == (Path("a/b.c.json"), Path("a/b.c.md"))
    assert fewshot.report_paths("runs/k1.json") == (Path("runs/k1.json"), Path("runs/k1.md"))
    assert fewshot.report_paths("runs/k1.MD") == (Path("runs/k1.json"), Path("runs/k1.md"))
