"""`podbench report RESULTS_DIR`: a static, self-contained HTML report.

RESULTS_DIR is a benchmark folder (results/<suite>/<id>/: every cell its suite.yml lists,
read from the results folder named there; a cell missing or damaged is refused, naming it,
unless --partial), a sweep folder (sweep-<id>/summary.csv: every point's results folder) or
one results folder (run.json). The report is written to RESULTS_DIR/report/:

  index.html       the leaderboard (sortable: click a column), the lag curves of every task
                   (all its cells on one axis, fold band = mean +- std over folds, significant
                   lags marked), the paired comparisons of the cells of each task
  cell-<id>.html   one page per cell: its per-lag table (val, test, p, q), lag curve with the
                   null's 95th percentile, timings, confusion matrix (classification tasks)
                   and resolved config

Figures are PNGs embedded as base64; the pages need no server and no network.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from podbench.config import read_yaml
from podbench.errors import ConfigError, DataError
from podbench.experiments.benchmark import cell_record, comparisons, leaderboard, read_record
from podbench.experiments.significance import null_label
from podbench.publish import publish_file

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
.wide { overflow-x: auto; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f2f2f2; }
td.text, th.text { text-align: left; }
table.sortable th { cursor: pointer; }
th[aria-sort=ascending]::after { content: " \\25B2"; }
th[aria-sort=descending]::after { content: " \\25BC"; }
tr.significant td.q { font-weight: bold; }
figure { margin: 1em 0; }
img { max-width: 100%; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; font-size: 0.85em; }
.note { color: #555; font-size: 0.9em; }
"""

SORT_JS = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var ascending = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      rows.sort(function (a, b) {
        var x = a.cells[col].getAttribute("data-value"), y = b.cells[col].getAttribute("data-value");
        var nx = parseFloat(x), ny = parseFloat(y);
        var order = (isNaN(nx) || isNaN(ny)) ? x.localeCompare(y) : nx - ny;
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


# --------------------------------------------------------------------------- records

@dataclass
class Found:
    """What a report shows: each complete cell's record and results folder, and the cells a
    benchmark's manifest lists that are missing or damaged (`id (why)`)."""

    kind: str
    records: list[tuple[dict, Path]]
    missing: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # cells the suite could not run here (why)

    @property
    def total(self) -> int:
        return len(self.records) + len(self.missing)


def benchmark_records(folder: Path) -> Found:
    """The cells suite.yml lists, each read from the results folder it names there (never by
    globbing, so no temporary, lock or trash folder beside a cell is read as one)."""
    manifest = folder / "suite.yml"
    raw = read_yaml(manifest, "suite manifest")
    cells = raw.get("cells") if isinstance(raw, dict) else None
    if not isinstance(cells, list) or not cells or not all(
            isinstance(c, dict) and isinstance(c.get("id"), str) and isinstance(c.get("run"), str)
            for c in cells):
        raise DataError(f"{manifest}: not a suite manifest (expected cells: a list of mappings "
                        "with id and run, as `podbench benchmark` writes)")
    records, missing = [], []
    for cell in cells:
        run_dir = folder / cell["run"]
        if not run_dir.resolve().is_relative_to(folder.resolve()):
            raise DataError(f"{manifest}: cell {cell['id']!r} names run {cell['run']!r}, outside "
                            f"{folder}")
        absent = [name for name in ("cell.json", "config.yml") if not (run_dir / name).is_file()]
        if absent:
            why = "no results folder" if not run_dir.is_dir() else f"no {' or '.join(absent)}"
            missing.append(f"{cell['id']} ({why}: {run_dir})")
            continue
        try:
            record = read_record(run_dir / "cell.json")
        except DataError as exc:
            missing.append(f"{cell['id']} ({exc})")
            continue
        if record.get("cell") != cell["id"]:
            missing.append(f"{cell['id']} ({run_dir / 'cell.json'} is the record of cell "
                           f"{record.get('cell')!r})")
            continue
        records.append((record, run_dir))
    skipped = [f"{c.get('id')} ({c.get('why')})" for c in raw.get("skipped") or []
               if isinstance(c, dict)]
    return Found("benchmark", records, missing, skipped)


def find_records(folder: Path) -> Found:
    """The cell records of a benchmark, sweep or run folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"report: {str(folder)!r} is not a folder")
    if (folder / "suite.yml").is_file():
        return benchmark_records(folder)
    if (folder / "summary.csv").is_file():
        summary = pd.read_csv(folder / "summary.csv")
        if "run_id" not in summary.columns:
            raise ConfigError(f"report: {folder / 'summary.csv'} has no run_id column")
        dirs = [folder / "points" / str(r) for r in summary["run_id"]]
        missing = [str(d) for d in dirs if not (d / "run.json").is_file()]
        if missing:
            raise ConfigError(f"report: sweep points without results: {', '.join(missing)}")
        return Found("sweep", [(cell_record(d, f"point-{p}"), d)
                               for p, d in zip(summary["point"], dirs)])
    if (folder / "run.json").is_file():
        return Found("run", [(cell_record(folder, folder.name), folder)])
    raise ConfigError(f"report: {folder} is neither a benchmark folder (suite.yml), a sweep "
                      "folder (summary.csv) nor a results folder (run.json)")


# --------------------------------------------------------------------------- figures

def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _curve(ax, record: dict, label: str, colour=None, null_band: bool = False):
    rows = record["per_lag"]
    lags = np.array([r["lag"] for r in rows], float)
    mean = np.array([np.nan if r["test_mean"] is None else r["test_mean"] for r in rows])
    std = np.array([np.nan if r["test_std"] is None else r["test_std"] for r in rows])
    line, = ax.plot(lags, mean, marker="o", ms=3, label=label, color=colour)
    ax.fill_between(lags, mean - std, mean + std, alpha=0.2, color=line.get_color())
    sig = [i for i, r in enumerate(rows) if r.get("significant")]
    if sig:
        ax.plot(lags[sig], mean[sig], ls="none", marker="*", ms=11, color=line.get_color(),
                markeredgecolor="k", markeredgewidth=0.5)
    if null_band and any(r.get("null_q95") is not None for r in rows):
        q95 = [np.nan if r.get("null_q95") is None else r["null_q95"] for r in rows]
        ax.plot(lags, q95, ls=":", color="grey", label="null 95th percentile")
    chosen = record["selected"]["lag"]
    ax.axvline(chosen, color=line.get_color(), lw=0.6, ls="--")


def lag_figure(records: list[dict], title: str, null_band: bool = False) -> str:
    """Test headline by lag for the given cells (one task) on one axis, as base64 PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.8), dpi=110)
    for record in records:
        _curve(ax, record, record["cell"], null_band=null_band)
    chance = records[0].get("chance")
    if chance is not None:
        ax.axhline(chance, color="k", lw=0.8, ls="--", label="chance")
    ax.axvline(0, color="grey", lw=0.5)
    ax.set_xlabel("lag relative to event onset (ms)")
    ax.set_ylabel(records[0]["headline"])
    ax.set_title(title + "  (band: mean ± fold std; *: q < alpha; dashed: lag chosen on "
                 "validation)", fontsize=8)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return _png(fig)


def confusion_figure(table: pd.DataFrame, lag: int) -> str:
    """The confusion matrix at one lag (rows: true class), as base64 PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    at = table[table["lags"] == lag]
    pred_cols = [c for c in at.columns if c.startswith("pred_")]
    counts = at[pred_cols].to_numpy(float)
    fig, ax = plt.subplots(figsize=(1.2 + 0.7 * len(pred_cols), 1.0 + 0.6 * len(at)), dpi=110)
    ax.imshow(counts, cmap="Blues")
    for (i, j), v in np.ndenumerate(counts):
        ax.text(j, i, f"{int(v)}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(pred_cols)), [c[5:] for c in pred_cols], rotation=45, fontsize=7)
    ax.set_yticks(range(len(at)), list(at["true"]), fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"test counts over folds at {lag} ms", fontsize=8)
    fig.tight_layout()
    return _png(fig)


# --------------------------------------------------------------------------- html

def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _table(frame: pd.DataFrame, table_id: str, sortable: bool = False,
           links: dict[str, str] | None = None, row_class=None) -> str:
    cls = ' class="sortable"' if sortable else ""
    text_cols = {c for c in frame.columns if frame[c].dtype == object}
    head = "".join(f'<th class="{"text" if c in text_cols else "num"}">{html.escape(str(c))}</th>'
                   for c in frame.columns)
    body = []
    for i, row in frame.iterrows():
        cells = []
        for c in frame.columns:
            value = row[c]
            if value is None or (isinstance(value, float) and not np.isfinite(value)):
                value = None
            shown = html.escape(_fmt(value))
            if links and c == "cell" and value in links:
                shown = f'<a href="{html.escape(links[value])}">{shown}</a>'
            sort_value = "" if value is None else str(value)
            cells.append(f'<td class="{"text" if c in text_cols else "num"}'
                         f'{" q" if c == "q" else ""}" data-value="{html.escape(sort_value)}">'
                         f"{shown}</td>")
        extra = f' class="{row_class(row)}"' if row_class and row_class(row) else ""
        body.append(f"<tr{extra}>{''.join(cells)}</tr>")
    return (f'<table id="{table_id}"{cls}><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")


def _page(title: str, body: str, script: bool = False) -> str:
    js = f"<script>{SORT_JS}</script>" if script else ""
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<link rel=\"icon\" href=\"data:,\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
            f"<body>{body}{js}</body></html>\n")


def _img(data: str, alt: str, caption: str) -> str:
    return (f'<figure><img class="figure" alt="{html.escape(alt)}" '
            f'src="data:image/png;base64,{data}"><figcaption class="note">'
            f"{html.escape(caption)}</figcaption></figure>")


def cell_page_name(cell_id: str) -> str:
    return f"cell-{cell_id}.html"


def cell_page(record: dict, run_dir: Path) -> str:
    """One cell's page: per-lag table, lag curve, timings, confusion matrix, config."""
    rows = []
    for r in record["per_lag"]:
        rows.append({"lag_ms": r["lag"], "val_mean": r["val_mean"], "test_mean": r["test_mean"],
                     "test_std": r["test_std"], "p": r.get("p"), "q": r.get("q"),
                     "null_q95": r.get("null_q95")})
    per_lag = pd.DataFrame(rows).dropna(axis=1, how="all")
    sig = record.get("significance")
    selected = record["selected"]
    parts = [f"<p><a href=\"index.html\">&larr; report</a></p><h1>{html.escape(record['cell'])}"
             "</h1>",
             f"<p>task <b>{html.escape(record['task'])}</b> ({html.escape(record['task_description'])}), "
             f"decoder <b>{html.escape(record['decoder']['model'])}</b>, subjects "
             f"<b>{html.escape(record['subjects']['set'])}</b>, run {html.escape(record['run_id'])}"
             f" (training key {html.escape(record['training_key'][:12])})</p>",
             f"<p>{html.escape(record['headline'])} at the lag chosen on "
             f"{html.escape(selected['by'])} ({selected['lag']} ms): "
             f"<b>{_fmt(selected['test_mean'])} ± {_fmt(selected['test_std'])}</b> (fold std)</p>"]
    if sig:
        parts.append(f"<p class=\"note\">null: {html.escape(null_label(sig))}; "
                     f"p per lag = (1 + #null ≥ observed) / (1 + N); q: Benjamini-Hochberg "
                     f"across lags; {sig['n_significant']} lag(s) with q &lt; {sig['alpha']}.</p>")
    parts.append(_img(lag_figure([record], record["cell"], null_band=True),
                      f"lag curve of {record['cell']}",
                      "test headline by lag; band: mean ± std over folds; dotted: the null's 95th "
                      "percentile; *: significant lags"))
    parts.append("<h2>Per lag</h2>" + _table(
        per_lag, "per-lag", row_class=lambda row: "significant" if sig and row.get("q") is not None
        and row["q"] < sig["alpha"] else ""))
    confusion = run_dir / "confusion_matrix.csv"
    if confusion.is_file():
        parts.append("<h2>Confusion matrix</h2>" + _img(
            confusion_figure(pd.read_csv(confusion), selected["lag"]),
            f"confusion matrix of {record['cell']}", "at the lag chosen on validation"))
    timings = pd.DataFrame([{"stage": k, "value": v} for k, v in record["timings_s"].items()])
    if len(timings):
        parts.append("<h2>Timings (s)</h2>" + _table(timings, "timings"))
    env = record["environment"]
    parts.append(f"<p class=\"note\">device {html.escape(str(env.get('device')))}; versions "
                 f"{html.escape(', '.join(f'{k} {v}' for k, v in env.get('versions', {}).items()))}"
                 "</p>")
    config_text = (run_dir / "config.yml").read_text()
    parts.append(f"<h2>Resolved config</h2><pre>{html.escape(config_text)}</pre>")
    return _page(f"podbench cell {record['cell']}", "".join(parts))


def _publish_page(path: Path, text: str) -> None:
    """One page, whole or not at all (a full disk: one line naming it)."""
    publish_file(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), "writing the report")


def write_report(folder: Path, log: Callable[[str], None] = print, partial: bool = False,
                 warn: Callable[[str], None] | None = None) -> Path:
    """Write folder/report/index.html and one page per cell; return the index path. A
    benchmark with a cell missing or damaged is refused, naming them; `partial` reports the
    others instead, says so at the top of the report and calls `warn` for each missing
    cell."""
    folder = Path(folder)
    found = find_records(folder)
    kind, records = found.kind, [r for r, _ in found.records]
    if found.missing and not partial:
        raise DataError(f"report: {len(found.missing)} of {found.total} cells of {folder} are "
                        f"missing or incomplete: {'; '.join(found.missing)}; run `podbench "
                        "benchmark` again to complete them, or pass --partial")
    if not records:
        raise DataError(f"report: no complete cell in {folder} (run `podbench benchmark` first)")
    for line in found.missing:
        (warn or log)(f"report: cell {line} is missing; the report is partial")
    out = folder / "report"
    links = {r["cell"]: cell_page_name(r["cell"]) for r in records}
    suite = records[0].get("suite") if kind == "benchmark" else None
    title = (f"podbench benchmark {suite['name']} v{suite['version']} ({suite['id']})"
             if suite else f"podbench {kind} {folder.name}")
    board = leaderboard(records)
    parts = [f"<h1>{html.escape(title)}</h1>"]
    if found.missing:
        parts.append(f"<p class=\"partial\"><b>partial: {len(records)} of {found.total} "
                     f"cells</b>; missing or incomplete: "
                     f"{html.escape('; '.join(found.missing))}</p>")
    if found.skipped:
        parts.append(f"<p class=\"note\">skipped (their files are missing here): "
                     f"{html.escape('; '.join(found.skipped))}</p>")
    parts += [f"<p class=\"note\">{len(records)} cell(s). Each row: the test headline metric "
             "(mean ± std over folds) at the lag chosen on the validation split, never on test; "
             "n_significant: lags whose permutation q-value (Benjamini-Hochberg across lags) is "
             "below alpha. Click a column to sort.</p>",
             "<h2>Leaderboard</h2>", '<div class="wide">',
             _table(board, "leaderboard", sortable=True, links=links), "</div>",
             "<h2>Lag curves</h2>"]
    for task in dict.fromkeys(r["task"] for r in records):
        of_task = [r for r in records if r["task"] == task]
        parts.append(f"<h3>{html.escape(task)}</h3>" + _img(
            lag_figure(of_task, task), f"lag curves of {task}",
            f"{of_task[0]['headline']} by lag for {len(of_task)} cell(s)"))
    pairs = comparisons(records)
    if len(pairs):
        parts.append("<h2>Paired comparisons</h2><p class=\"note\">Wilcoxon signed-rank test "
                     "(two-sided) of cell_a minus cell_b over their (fold, lag) pairs of the test "
                     "headline; a_better counts the pairs where cell_a scores higher.</p>"
                     + _table(pairs, "comparisons", sortable=True))
    _publish_page(out / "index.html", _page(title, "".join(parts), script=True))
    for record, run_dir in found.records:
        _publish_page(out / links[record["cell"]], cell_page(record, run_dir))
    log(f"report: {out / 'index.html'}")
    return out / "index.html"
