"""`spatialspec report` from a study folder: the HTML content (rows, intervals, pair AUROCs, figures, settings, runs,
saliency), escaping, self-containment, missing optional parts and argument errors."""

from __future__ import annotations

import base64
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest

from spatialspec.cli.main import main
from spatialspec.report import load_folder, read_summary_csv, render_report, write_study_report
from spatialspec.report.figures import frontier_points
from spatialspec.study.report import row_label
from tests.report.helpers import HOSTILE, make_records, make_study, tiny_png


class _Page(HTMLParser):
    """The tables of a page (by id: rows of cell texts), its <img> sources and whether it has a <script>."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[str] = []
        self.tags: set[str] = set()
        self._table: str | None = None
        self._in_body = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        if tag == "table":
            self._table = attrs.get("id") or f"table{len(self.tables)}"
            self.tables[self._table] = []
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.tables[self._table].append([])
        elif tag == "td" and self._in_body:
            self._cell = []
        elif tag == "img":
            self.images.append(attrs["src"])

    def handle_endtag(self, tag):
        if tag == "tbody":
            self._in_body = False
        elif tag == "td" and self._cell is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    return page


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    return make_study(tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def page_text(study) -> str:
    out = study.parent / "out" / "report.html"
    assert main(["report", str(study), "--out", str(out)]) == 0
    return out.read_text()


def test_results_table_has_one_row_per_level_and_score_with_its_interval(study, page_text):
    rows = read_summary_csv(study / "summary.csv")
    table = parse(page_text).tables["results"]
    assert [(line[0], line[1]) for line in table] == [(row_label(r), r["score"]) for r in rows]
    assert len(table) == 5 * 2  # binary, seg n=5, seg n=10, bbox n=5, bbox n=10; two scores
    for line, row in zip(table, rows):
        assert line[3] == f"{row['robust_auroc_mean']:.3f} ± {row['robust_auroc_std']:.3f}"
        assert line[4] == f"[{row['robust_auroc_ci_low']:.3f}, {row['robust_auroc_ci_high']:.3f}]"
        assert row["robust_auroc_ci_low"] < row["robust_auroc_ci_high"]


def test_pair_aurocs_per_subgroup(study, page_text):
    records = json.loads((study / "results.json").read_text())
    table = parse(page_text).tables["pairs"]
    assert len(table) == 10
    seg = [r for r in records if row_label(r) == "seg n=10" and r["score"] == "max"]
    line = next(line for line in table if line[:2] == ["seg n=10", "max"])
    mean = sum(r["auroc_y0s1_y1s0"] for r in seg) / len(seg)
    assert line[5].startswith(f"{mean:.3f} ± ")  # y=0,s=1 vs y=1,s=0: the robust pair
    assert "y=0,s=1 vs y=1,s=0" in page_text


def test_figures_settings_runs_and_saliency(study, page_text):
    page = parse(page_text)
    # robust AUROC bars, label-budget curves, frontier, the saliency figure: all PNG data URIs
    assert len(page.images) == 4 and all(src.startswith("data:image/png;base64,") for src in page.images)
    assert base64.b64decode(page.images[-1].split(",", 1)[1]) == tiny_png()
    assert {line[0]: line[1] for line in page.tables["data-model"]}["mu_a"] == "2.000"  # the data model's parameters
    runs = page.tables["runs"]
    assert len(runs) == 10 and {line[-1] for line in runs} == {f"run{line[0]}" for line in runs}
    assert page.tables["saliency"] == [["binary", "pixel", "1", "0.600 ± 0.000", "0.100 ± 0.000", "0.300 ± 0.000"]]
    frontier = page.tables["frontier"]
    assert {line[0] for line in frontier} == {"binary", "seg", "bbox"}


def test_values_are_escaped_and_the_page_is_self_contained(page_text):
    assert HOSTILE not in page_text and "<script" not in page_text
    assert html_escaped(HOSTILE) in page_text
    page = parse(page_text)
    assert "script" not in page.tags
    assert not re.search(r"(src|href)=\"(?!data:)", page_text), "a resource outside the page"
    assert "http://" not in page_text and "https://" not in page_text


def html_escaped(text: str) -> str:
    import html

    return html.escape(text)


def test_frontier_keeps_only_points_no_cheaper_point_beats():
    class Curve:
        def __init__(self, option, level, budgets, robust):
            self.option, self.level, self.budgets, self.robust = option, level, budgets, robust
            self.location_supervised = level != "binary"

    class Planner:
        @staticmethod
        def cost(level, n):
            return {"seg": 2.0, "bbox": 0.5}[level] * n

    points = frontier_points([Curve("binary", "binary", (1,), (0.1,)), Curve("seg", "seg", (5, 10), (0.5, 0.9)),
                              Curve("bbox", "bbox", (5, 10), (0.6, 0.55))], Planner())
    on = {(p["option"], p["n"]) for p in points if p["frontier"]}
    assert on == {("binary", None), ("bbox", 5), ("seg", 10)}  # bbox 10 and seg 5 cost more for less


def test_missing_optional_parts(tmp_path):
    """No summary.csv (rows recomputed with intervals from the predictions), no study.json, no saliency, no label
    budgets; and records without predictions files: no intervals."""
    study = tmp_path / "bare"
    records = [r for r in make_records(study) if r["location_labels"] in (None, 10)]
    for r in records:
        r["location_labels"] = None
    (study / "results.json").write_text(json.dumps(records))
    text = render_report(load_folder(study))
    page = parse(text)
    assert len(page.tables["results"]) == 6 and all(line[4] != "-" for line in page.tables["results"])
    assert len(page.images) == 1  # the bars only: no budgets, no saliency
    assert "No study.json" in text and "saliency" not in page.tables
    shutil.rmtree(study / "runs")
    page = parse(render_report(load_folder(study)))
    assert {line[4] for line in page.tables["results"]} == {"-"}


def test_saliency_elsewhere_and_missing_figure(study, tmp_path, capsys):
    other = tmp_path / "audit"
    shutil.copytree(study / "saliency", other)
    (other / "figures" / "binary-s0.png").unlink()
    out = tmp_path / "r.html"
    assert main(["report", str(study), "--saliency", str(other), "--out", str(out)]) == 0
    text = out.read_text()
    assert "figures/binary-s0.png" in text and "missing" in text
    assert main(["report", str(study), "--saliency", str(tmp_path / "none"), "--out", str(out)]) == 2
    assert "--saliency" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    ([], "RESULTS_DIR is required"),
    (["{study}", "--tracking-uri", "sqlite:///x.db", "--experiment", "e"], "not both"),
    (["--tracking-uri", "sqlite:///x.db"], "go together"),
    (["{tmp}/nowhere"], "study folder not found"),
    (["--tracking-uri", "sqlite:///{tmp}/none.db", "--experiment", "e"], "no MLflow database"),
])
def test_bad_arguments_exit_2_naming_the_culprit(argv, message, study, tmp_path, capsys):
    argv = [a.format(study=study, tmp=tmp_path) for a in argv]
    assert main(["report", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spatialspec report: error: ") and message in err and len(err.strip().splitlines()) == 1


def test_write_study_report_uses_the_study_rows(study, tmp_path):
    """What `spatialspec study` calls once it has summarised: the rows it passes are the table (not recomputed)."""
    records = json.loads((study / "results.json").read_text())
    rows = read_summary_csv(study / "summary.csv")[:3]
    path = write_study_report(study, records, rows, path=tmp_path / "report.html")
    assert path == tmp_path / "report.html"
    assert [line[:2] for line in parse(path.read_text()).tables["results"]] == [[row_label(r), r["score"]]
                                                                                for r in rows]


def test_tuning_grid_and_choice_are_a_table_of_their_own(tmp_path):
    folder = make_study(tmp_path / "tuned")
    params = json.loads((folder / "study.json").read_text())
    trials = [{"run_key": f"seg-spl-n20-s0-spl_weight={w}", "tuned": {"spl_weight": w}, "key_metric": "val_loss",
               "best_key_metric": loss, "chosen": w == 0.1} for w, loss in ((0.1, 0.36), (1, 0.46))]
    params["tune"] = {"grid": {"spl_weight": [0.1, 1]}, "seed": 0, "budget": 20, "select": "val_loss",
                      "choice": {"seg-spl": {"spl_weight": 0.1}}, "trials": trials}
    (folder / "study.json").write_text(json.dumps(params))
    page = parse(render_report(load_folder(folder)))
    assert page.tables["tuning"] == [["seg-spl-n20-s0-spl_weight=0.1", "spl_weight=0.1", "val_loss", "0.360", "yes"],
                                     ["seg-spl-n20-s0-spl_weight=1", "spl_weight=1", "val_loss", "0.460", ""]]
    assert "tune" not in {line[0] for line in page.tables["settings"]}
    # a study without --tune has no such table
    assert "tuning" not in parse(render_report(load_folder(make_study(tmp_path / "plain")))).tables
