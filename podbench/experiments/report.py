"""`podbench report RESULTS_DIR`: a static, self-contained HTML report.

RESULTS_DIR is a benchmark folder (results/<suite>/<id>/: every cell its suite.yml lists,
read from the results folder named there; a cell missing or damaged is refused, naming it,
unless --partial), a sweep folder (sweep-<id>/summary.csv: every point's results folder) or
one results folder (run.json). The report is written to RESULTS_DIR/report/:

  index.html       the leaderboard (grouped by task, each task's validation-chosen best
                   highlighted, the reference's published value beside each cell, secondary
                   columns behind "show all columns"; click a column to sort), the lag curves
                   of every task (all its cells on one axis, or one panel per subject set;
                   fold band = mean +- std over folds, significant lags starred, the
                   reference's published curve dotted), the paired comparisons at the
                   shared validation-chosen lag and the lags where cells differ
  cell-<id>.html   one page per cell: its per-lag table (val, test, p, q, reference), lag
                   curve with the null's band, timings, confusion matrix (classification
                   tasks) and resolved config
  figures/         every figure as PNG and SVG (podbench.plotting's style)

Figures are also embedded in the pages as base64 PNGs; the pages need no server and no
network.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from podbench import plotting
from podbench.config import read_yaml
from podbench.errors import ConfigError, DataError
from podbench.experiments.records import (
    cell_record,
    comparisons,
    comparisons_by_lag,
    leaderboard,
    read_record,
)
from podbench.experiments.significance import null_label
from podbench.publish import publish_bytes, publish_text
from podbench.tasks.metrics import metric_label

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 72em; padding: 0 1em;
       color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right; }
th { background: #f2f2f2; }
td.text, th.text { text-align: left; }
table.sortable th { cursor: pointer; }
th[aria-sort=ascending]::after { content: " \\25B2"; }
th[aria-sort=descending]::after { content: " \\25BC"; }
tr.significant td.q { font-weight: bold; }
tr.best td { background: #fff6cc; font-weight: 600; }
#leaderboard .secondary { display: none; }
body.all-columns #leaderboard .secondary { display: table-cell; }
figure { margin: 1em 0; }
img { max-width: 100%; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; font-size: 0.85em; }
.scroll { overflow-x: auto; }
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
        var x = a.cells[col].getAttribute("data-value");
        var y = b.cells[col].getAttribute("data-value");
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
    if (
        not isinstance(cells, list)
        or not cells
        or not all(
            isinstance(c, dict) and isinstance(c.get("id"), str) and isinstance(c.get("run"), str)
            for c in cells
        )
    ):
        raise DataError(
            f"{manifest}: not a suite manifest (expected cells: a list of mappings "
            "with id and run, as `podbench benchmark` writes)"
        )
    records, missing = [], []
    for cell in cells:
        run_dir = folder / cell["run"]
        if not run_dir.resolve().is_relative_to(folder.resolve()):
            raise DataError(
                f"{manifest}: cell {cell['id']!r} names run {cell['run']!r}, outside {folder}"
            )
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
            missing.append(
                f"{cell['id']} ({run_dir / 'cell.json'} is the record of cell "
                f"{record.get('cell')!r})"
            )
            continue
        records.append((record, run_dir))
    skipped = [
        f"{c.get('id')} ({c.get('why')})" for c in raw.get("skipped") or [] if isinstance(c, dict)
    ]
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
        return Found(
            "sweep", [(cell_record(d, f"point-{p}"), d) for p, d in zip(summary["point"], dirs)]
        )
    if (folder / "run.json").is_file():
        return Found("run", [(cell_record(folder, folder.name), folder)])
    raise ConfigError(
        f"report: {folder} is neither a benchmark folder (suite.yml), a sweep "
        "folder (summary.csv) nor a results folder (run.json)"
    )


# --------------------------------------------------------------------------- figures


class Figures:
    """The report's figures: each embedded in its page as PNG and written to report/figures/
    as PNG and SVG (the vector twin, text kept as text) when the report is published."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, bytes]] = {}

    def html(self, fig, name: str, alt: str, caption: str) -> str:
        png, svg = plotting.encoded(fig)
        self.files[name] = (png, svg)
        data = base64.b64encode(png).decode("ascii")
        return (
            f'<figure><img class="figure" alt="{html.escape(alt)}" '
            f'src="data:image/png;base64,{data}"><figcaption class="note">'
            f'{html.escape(caption)} (<a href="figures/{html.escape(name)}.svg">SVG</a>, '
            f'<a href="figures/{html.escape(name)}.png">PNG</a>)</figcaption></figure>'
        )


def _series(rows: list[dict], key: str) -> list:
    return [r.get(key) for r in rows]


def _draw_cells(ax, records: list[dict], null_band: bool, by_decoder: bool = False) -> None:
    """Each cell's curve (band: mean ± fold std), labelled by cell (or by decoder), and, once
    per reference run, the reference's published curve."""
    shown = set()
    for i, record in enumerate(records):
        rows = record["per_lag"]
        mean = np.array([np.nan if v is None else v for v in _series(rows, "test_mean")], float)
        std = np.array([np.nan if v is None else v for v in _series(rows, "test_std")], float)
        null = (
            (_series(rows, "null_mean"), _series(rows, "null_q95"))
            if null_band and any(v is not None for v in _series(rows, "null_q95"))
            else None
        )
        plotting.lag_curve(
            ax,
            record["lags"],
            mean,
            low=mean - std,
            high=mean + std,
            label=record["decoder"]["model"] if by_decoder else record["cell"],
            colour=f"C{i % 10}",
            significant=[bool(r.get("significant")) for r in rows],
            null=null,
            chosen=record["selected"]["lag"],
        )
        ref = record.get("reference")
        if ref and ref["run"] not in shown:
            shown.add(ref["run"])
            lags = sorted(int(k) for k in ref["per_lag"])
            ax.plot(
                lags,
                [ref["per_lag"][str(k)] for k in lags],
                color="0.45",
                ls=":",
                marker="x",
                ms=3,
                lw=1,
                label="reference (published, real data)",
            )


def lag_figure(
    records: list[dict], title: str, figures: Figures, name: str, null_band: bool = False
) -> str:
    """The test headline by lag of the given cells (one task) on one axis, or one panel per
    subject set (small multiples sharing the y axis) when the cells have several."""
    sets = list(dict.fromkeys(r["subjects"]["set"] for r in records))
    first = records[0]
    ylabel = metric_label(first["headline"])
    cols = min(3, len(sets))
    rows = -(-len(sets) // cols)
    height = 3.4 if len(sets) == 1 else 2.6 * rows + 0.6
    with plotting.figure(height=height, nrows=rows, ncols=cols, sharey=True, squeeze=False) as (
        fig,
        axes,
    ):
        for ax, subjects in zip(axes.ravel(), sets):
            of_set = [r for r in records if r["subjects"]["set"] == subjects]
            _draw_cells(ax, of_set, null_band, by_decoder=len(sets) > 1)
            plotting.lag_axes(ax, first["lags"], ylabel, first.get("chance"))
            if len(sets) > 1:
                ax.set_title(f"subjects: {subjects}", loc="left")
        for ax in axes.ravel()[len(sets) :]:
            ax.set_visible(False)
        axes.ravel()[0].legend()
        fig.suptitle(
            f"{title} (band: mean ± fold std; *: q < alpha; dashed: lag chosen on validation)",
            fontsize=8,
        )
        return figures.html(
            fig, name, f"lag curves of {title}", f"{ylabel} by lag for {len(records)} cell(s)"
        )


def confusion_figure(table: pd.DataFrame, lag: int, figures: Figures, name: str) -> str:
    """The confusion matrix at one lag (rows: true class)."""
    at = table[table["lags"] == lag]
    pred_cols = [c for c in at.columns if c.startswith("pred_")]
    counts = at[pred_cols].to_numpy(float)
    with plotting.figure(width=1.6 + 0.6 * len(pred_cols), height=1.2 + 0.45 * len(at)) as (
        fig,
        ax,
    ):
        ax.imshow(counts, cmap="Blues")
        ax.grid(False)
        for (i, j), v in np.ndenumerate(counts):
            ax.text(j, i, f"{int(v)}", ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(pred_cols)), [c[5:] for c in pred_cols], rotation=45)
        ax.set_yticks(range(len(at)), list(at["true"]))
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.set_title(f"test counts over folds at {lag} ms")
        return figures.html(
            fig, name, f"confusion matrix at {lag} ms", "at the lag chosen on validation"
        )


# --------------------------------------------------------------------------- html


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _table(
    frame: pd.DataFrame,
    table_id: str,
    sortable: bool = False,
    links: dict[str, str] | None = None,
    row_class=None,
    secondary: tuple[str, ...] = (),
    headers: dict[str, str] | None = None,
) -> str:
    """An HTML table; `secondary` columns are hidden until "show all columns" is ticked."""
    cls = ' class="sortable"' if sortable else ""
    text_cols = {c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])}

    def classes(c) -> str:
        return " ".join(
            [
                "text" if c in text_cols else "num",
                *(["secondary"] if c in secondary else []),
                *(["q"] if c == "q" else []),
            ]
        )

    head = "".join(
        f'<th class="{classes(c)}">{html.escape(str((headers or {}).get(c, c)))}</th>'
        for c in frame.columns
    )
    body = []
    for _, row in frame.iterrows():
        cells = []
        for c in frame.columns:
            value = row[c]
            if value is None or (isinstance(value, float) and not np.isfinite(value)):
                value = None
            shown = html.escape(_fmt(value))
            if links and c == "cell" and value in links:
                shown = f'<a href="{html.escape(links[value])}">{shown}</a>'
            sort_value = "" if value is None else str(value)
            cells.append(
                f'<td class="{classes(c)}" data-value="{html.escape(sort_value)}">{shown}</td>'
            )
        extra = f' class="{row_class(row)}"' if row_class and row_class(row) else ""
        body.append(f"<tr{extra}>{''.join(cells)}</tr>")
    return (
        f'<table id="{table_id}"{cls}><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _page(title: str, body: str, script: bool = False) -> str:
    js = f"<script>{SORT_JS}</script>" if script else ""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f"<body>{body}{js}</body></html>\n"
    )


def cell_page_name(cell_id: str) -> str:
    return f"cell-{cell_id}.html"


def _reference_note(ref: dict | None) -> str:
    if not ref:
        return ""
    return (
        f'<p class="note">reference (published, real data): {_fmt(ref["value"])} at '
        f"{ref['lag']} ms ({html.escape(ref['metric'])}; the reference's best lag, chosen on "
        f"its test split), {html.escape(ref['source'])}. Measured on ds005574; on a "
        "stand-in it is context, not a target.</p>"
    )


def cell_page(record: dict, run_dir: Path, figures: Figures) -> str:
    """One cell's page: per-lag table, lag curve, timings, confusion matrix, config."""
    ref = record.get("reference")
    rows = []
    for r in record["per_lag"]:
        rows.append(
            {
                "lag_ms": r["lag"],
                "val_mean": r["val_mean"],
                "test_mean": r["test_mean"],
                "test_std": r["test_std"],
                "p": r.get("p"),
                "q": r.get("q"),
                "null_q95": r.get("null_q95"),
                "reference": ref["per_lag"].get(str(r["lag"])) if ref else None,
            }
        )
    per_lag = pd.DataFrame(rows).dropna(axis=1, how="all")
    sig = record.get("significance")
    selected = record["selected"]
    label = metric_label(record["headline"])
    parts = [
        f'<p><a href="index.html">&larr; report</a></p><h1>{html.escape(record["cell"])}</h1>',
        f"<p>task <b>{html.escape(record['task'])}</b> "
        f"({html.escape(record['task_description'])}), "
        f"decoder <b>{html.escape(record['decoder']['model'])}</b>, subjects "
        f"<b>{html.escape(record['subjects']['set'])}</b>, run {html.escape(record['run_id'])}"
        f" (training key {html.escape(record['training_key'][:12])})</p>",
        f"<p>{html.escape(label)} at the lag chosen on "
        f"{html.escape(metric_label(selected['by']))} ({selected['lag']} ms): "
        f"<b>{_fmt(selected['test_mean'])} ± {_fmt(selected['test_std'])}</b> (fold std)</p>",
        _reference_note(ref),
    ]
    if sig:
        parts.append(
            f'<p class="note">null: {html.escape(null_label(sig))}; '
            f"p per lag = (1 + #null ≥ observed) / (1 + N); q: Benjamini-Hochberg "
            f"across lags; {sig['n_significant']} lag(s) with q &lt; {sig['alpha']}.</p>"
        )
    parts.append(
        lag_figure([record], record["cell"], figures, f"cell-{record['cell']}", null_band=True)
    )
    parts.append(
        "<h2>Per lag</h2>"
        + _table(
            per_lag,
            "per-lag",
            row_class=lambda row: (
                "significant"
                if sig and row.get("q") is not None and row["q"] < sig["alpha"]
                else ""
            ),
        )
    )
    confusion = run_dir / "confusion_matrix.csv"
    if confusion.is_file():
        parts.append(
            "<h2>Confusion matrix</h2>"
            + confusion_figure(
                pd.read_csv(confusion), selected["lag"], figures, f"confusion-{record['cell']}"
            )
        )
    timings = pd.DataFrame([{"stage": k, "value": v} for k, v in record["timings_s"].items()])
    if len(timings):
        parts.append("<h2>Timings (s)</h2>" + _table(timings, "timings"))
    env = record["environment"]
    hardware = env.get("hardware") or {}
    parts.append(
        f'<p class="note">device {html.escape(str(env.get("device")))}'
        + (f", CPU {html.escape(str(hardware.get('cpu')))}" if hardware else "")
        + f"; versions "
        f"{html.escape(', '.join(f'{k} {v}' for k, v in env.get('versions', {}).items()))}"
        "</p>"
    )
    config_text = (run_dir / "config.yml").read_text()
    parts.append(f"<h2>Resolved config</h2><pre>{html.escape(config_text)}</pre>")
    return _page(f"podbench cell {record['cell']}", "".join(parts))


LEADING = (
    "cell",
    "task",
    "decoder",
    "subjects",
    "lag_ms",
    "test_mean",
    "test_std",
    "reference",
    "n_significant",
)
SECONDARY = ("metric", "val_mean", "n_lags", "null", "reference_lag_ms", "run_id")
HEADERS = {
    "lag_ms": "lag (ms)",
    "test_mean": "test",
    "test_std": "± fold std",
    "reference": "reference (published)",
    "n_significant": "lags q < α",
    "val_mean": "validation",
    "n_lags": "lags",
    "reference_lag_ms": "reference lag (ms)",
    "run_id": "run",
}


def _leaderboard_html(board: pd.DataFrame, links: dict[str, str]) -> str:
    """The leaderboard, grouped by task, each task's validation-chosen best highlighted; the
    secondary columns hidden until "show all columns" is ticked."""
    shown = board[[c for c in (*LEADING, *SECONDARY) if c in board.columns]].copy()
    shown["metric"] = shown["metric"].map(metric_label)
    best = set(board.loc[board["best_in_task"], "cell"])
    return (
        '<p class="note"><label><input type="checkbox" id="show-all" onchange="'
        "document.body.classList.toggle('all-columns', this.checked)\"> show all columns "
        "(metric, validation value, lags, null, reference lag, run id)</label></p>"
        + _table(
            shown,
            "leaderboard",
            sortable=True,
            links=links,
            secondary=SECONDARY,
            headers=HEADERS,
            row_class=lambda row: "best" if row["cell"] in best else "",
        )
    )


def _comparisons_html(records: list[dict]) -> str:
    pairs = comparisons(records)
    if not len(pairs):
        return ""
    by_lag = comparisons_by_lag(records)
    by_lag = by_lag[by_lag["q_value"] < 0.05]
    return (
        '<h2>Paired comparisons</h2><p class="note">Cell A minus cell B of one task at '
        "their shared lag, chosen on the mean of both cells' validation headline (never on "
        "test): the mean fold difference of the test headline, its 95 % bootstrap interval "
        "(resampling folds) and the paired t-test over folds (two-sided); a_better counts "
        "the folds where A scores higher.</p>"
        + '<div class="scroll">'
        + _table(
            pairs.drop(columns=["task", "metric", "statistic"]),
            "comparisons",
            sortable=True,
            headers={
                "lag_ms": "lag (ms)",
                "a_mean": "A",
                "b_mean": "B",
                "difference": "A - B",
                "ci_low": "95 % CI low",
                "ci_high": "95 % CI high",
                "n_folds": "folds",
                "a_better": "A higher",
                "p_value": "p (paired t)",
            },
        )
        + "</div>"
        + '<h3>Lags where the cells differ</h3><p class="note">The same test at every '
        "shared lag, Benjamini-Hochberg q across each pair's lags; rows with q &lt; 0.05 "
        "(all rows in comparisons_by_lag.csv).</p>"
        + (
            _table(
                by_lag.drop(columns=["task", "metric", "statistic"]),
                "comparisons-by-lag",
                sortable=True,
            )
            if len(by_lag)
            else '<p class="note">none</p>'
        )
    )


def write_report(
    folder: Path,
    log: Callable[[str], None] = print,
    partial: bool = False,
    warn: Callable[[str], None] | None = None,
) -> Path:
    """Write the static HTML report of a benchmark or sweep folder.

    Writes ``folder/report/index.html``, one page per cell and ``report/figures/`` (every
    figure as PNG and SVG). A benchmark with a cell missing or damaged is refused, naming
    them, unless `partial`.

    Parameters
    ----------
    folder : pathlib.Path
        A benchmark suite's or a sweep's results folder.
    log : callable, default print
        Called with each progress line.
    partial : bool, default False
        Report the complete cells when some are missing, saying so at the top of the report.
    warn : callable, optional
        Called for each missing cell of a partial report (default: `log`).

    Returns
    -------
    pathlib.Path
        The report's index.html.

    Raises
    ------
    podbench.errors.DataError
        Missing cells (without `partial`), or no complete cell at all.
    """
    folder = Path(folder)
    found = find_records(folder)
    kind, records = found.kind, [r for r, _ in found.records]
    if found.missing and not partial:
        raise DataError(
            f"report: {len(found.missing)} of {found.total} cells of {folder} are "
            f"missing or incomplete: {'; '.join(found.missing)}; run `podbench "
            "benchmark` again to complete them, or pass --partial"
        )
    if not records:
        raise DataError(f"report: no complete cell in {folder} (run `podbench benchmark` first)")
    for line in found.missing:
        (warn or log)(f"report: cell {line} is missing; the report is partial")
    out = folder / "report"
    figures = Figures()
    links = {r["cell"]: cell_page_name(r["cell"]) for r in records}
    suite = records[0].get("suite") if kind == "benchmark" else None
    title = (
        f"podbench benchmark {suite['name']} v{suite['version']} ({suite['id']})"
        if suite
        else f"podbench {kind} {folder.name}"
    )
    parts = [f"<h1>{html.escape(title)}</h1>"]
    if found.missing:
        parts.append(
            f'<p class="partial"><b>partial: {len(records)} of {found.total} '
            f"cells</b>; missing or incomplete: "
            f"{html.escape('; '.join(found.missing))}</p>"
        )
    if found.skipped:
        parts.append(
            f'<p class="note">skipped (their files are missing here): '
            f"{html.escape('; '.join(found.skipped))}</p>"
        )
    parts += [
        f'<p class="note">{len(records)} cell(s), grouped by task. Each row: the test '
        "headline metric (mean ± std over folds) at the lag chosen on the validation "
        "split, never on test; highlighted: each task's best cell on validation; lags "
        "q &lt; α: lags whose permutation q-value (Benjamini-Hochberg across lags) is "
        "below alpha; reference (published): the reference's own number on the real "
        "dataset (its best test lag), context on a stand-in. Click a column to sort.</p>",
        "<h2>Leaderboard</h2>",
        _leaderboard_html(leaderboard(records), links),
        "<h2>Lag curves</h2>",
    ]
    for task in dict.fromkeys(r["task"] for r in records):
        of_task = [r for r in records if r["task"] == task]
        parts.append(
            f"<h3>{html.escape(task)}</h3>" + lag_figure(of_task, task, figures, f"task-{task}")
        )
    parts.append(_comparisons_html(records))
    pages = {"index.html": _page(title, "".join(parts), script=True)}
    for record, run_dir in found.records:
        pages[links[record["cell"]]] = cell_page(record, run_dir, figures)
    for name, (png, svg) in figures.files.items():
        for suffix, data in ((".png", png), (".svg", svg)):
            publish_bytes(out / "figures" / f"{name}{suffix}", data, "writing the report")
    for name, text in pages.items():
        publish_text(out / name, text, "writing the report")
    log(f"report: {out / 'index.html'}")
    return out / "index.html"
