"""The `podbench` command line (click). Heavy libraries are imported inside the commands."""

from __future__ import annotations

import atexit
import functools
import logging
import sys
from pathlib import Path

import click

DEMO_DATA = Path("data/podcast-standin-demo")
DEFAULT_STORES = Path("stores")  # output.stores' default


class ManyValues(click.Option):
    """An option that takes every following value up to the next option: --subjects 1 3 5."""

    def add_to_parser(self, parser, ctx):
        super().add_to_parser(parser, ctx)
        for name in self.opts:
            opt = parser._long_opt.get(name) or parser._short_opt.get(name)
            if opt is None:
                continue
            original = opt.process

            def process(value, state, original=original):
                original(value, state)
                while state.rargs and not state.rargs[0].startswith("-"):
                    original(state.rargs.pop(0), state)

            opt.process = process


def reports_errors(fn):
    """Turn podbench's own errors into a one-line message and their exit status (2: bad input,
    1: the machine ran out of a resource). After it, nothing more reaches stderr: a library's
    work left pending by the refusal (asyncio tasks of zarr's reads, say) is dropped quietly
    at exit (`_quiet_exit`)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from podbench.errors import PodbenchError

        try:
            return fn(*args, **kwargs)
        except PodbenchError as exc:
            click.echo(f"error: {exc}", err=True)
            atexit.unregister(_quiet_exit)
            atexit.register(_quiet_exit)
            sys.exit(exc.exit_code)

    return wrapper


def _quiet_exit() -> None:
    """At exit after a refusal: what a library left pending is dropped, not printed."""
    logging.getLogger("asyncio").disabled = True  # "Task was destroyed but it is pending!"
    sys.unraisablehook = lambda unraisable: None  # "Exception ignored in: <coroutine ...>"


def config_options(fn):
    fn = click.option(
        "--set",
        "overrides",
        multiple=True,
        metavar="PATH=VALUE",
        help="Override a config field (YAML-typed), e.g. --set training.lr=3e-4. Repeatable.",
    )(fn)
    return click.option(
        "--config",
        "config_path",
        required=True,
        type=click.Path(dir_okay=False, path_type=Path),
        help="Experiment YAML file.",
    )(fn)


def load_config(config_path: Path, overrides):
    from podbench import config

    return config.load(config_path, overrides)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="podbench")
def main():
    """podbench: word decoding from the Podcast ECoG dataset (OpenNeuro ds005574).

    A cached feature store (word epochs, targets, latents in zarr keyed by config hashes) and
    a JAX trainer that trains every lag x fold x member lane in one compiled program.
    """


@main.command()
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write the stand-in dataset into.",
)
@click.option(
    "--subjects",
    cls=ManyValues,
    type=int,
    multiple=True,
    metavar="N [N ...]",
    help="Subject numbers, e.g. --subjects 1 3 (default: all nine).",
)
@click.option(
    "--duration",
    type=float,
    default=1800.0,
    show_default=True,
    help="Seconds of recording (the transcript is cut to match).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--dim",
    type=int,
    default=1600,
    show_default=True,
    help="Dimension of the stand-in GPT-2 features.",
)
@click.option("--raw", is_flag=True, help="Also write the raw EDF recordings.")
@click.option(
    "--snr",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Gain of every planted response (0: no signal, noise and drift only).",
)
@reports_errors
def synth(out, subjects, duration, seed, dim, raw, snr):
    """Write a synthetic stand-in of ds005574 with planted word responses."""
    from podbench.data.synth import synthesize

    synthesize(
        out,
        list(subjects) or None,
        duration=duration,
        seed=seed,
        dim=dim,
        raw=raw,
        snr=snr,
        progress=click.echo,
    )
    click.echo(f"stand-in written to {out}")


@main.command()
@click.option(
    "--root",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="BIDS root with the raw sub-XX/ieeg/*_ieeg.edf recordings.",
)
@click.option(
    "--subjects",
    cls=ManyValues,
    type=int,
    multiple=True,
    metavar="N [N ...]",
    help="Subject numbers (default: all).",
)
@reports_errors
def highgamma(root, subjects):
    """Recompute the high-gamma derivative from the raw EDF (read with data.signal:
    podbench_highgamma)."""
    from podbench.data.highgamma import write_highgamma

    write_highgamma(root, list(subjects) or None, log=click.echo)


@main.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Fetch the files this experiment YAML reads.",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="PATH=VALUE",
    help="Override a config field (YAML-typed). Repeatable.",
)
@click.option(
    "--what",
    default=None,
    metavar="PARTS",
    help="Instead of --config: comma-separated parts, of highgamma, broadband, raw, stimuli.",
)
@click.option(
    "--to",
    "to",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Dataset root to download into (resumes what is already there).",
)
@click.option("--dry-run", is_flag=True, help="Only print the files, their sizes and the total.")
@reports_errors
def download(config_path, overrides, what, to, dry_run):
    """Download exactly the ds005574 files a config (or --what) needs, with openneuro-py."""
    from podbench.data.download import download as fetch
    from podbench.data.layout import plan_for_config, plan_for_parts
    from podbench.errors import ConfigError

    if (config_path is None) == (what is None):
        raise ConfigError("give --config FILE or --what PARTS (one of them)")
    if config_path is not None:
        plan = plan_for_config(load_config(config_path, overrides))
    else:
        plan = plan_for_parts([p.strip() for p in what.split(",") if p.strip()])
    fetch(plan, to, dry_run=dry_run, log=click.echo)


@main.command("check-data")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Check the files this experiment YAML reads (and its data.root).",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="PATH=VALUE",
    help="Override a config field (YAML-typed). Repeatable.",
)
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Dataset root (default: the config's data.root).",
)
@click.option(
    "--all",
    "full",
    is_flag=True,
    help="Instead of --config: require every file of ds005574 1.0.2 (default: every "
    "file of the parts present).",
)
@reports_errors
def check_data(config_path, overrides, root, full):
    """Check a ds005574 copy (or stand-in) against what the dataset is known to be: every
    file present, and every file the parts present need (or a config reads)."""
    from podbench.data.check import check_data as run_check
    from podbench.errors import ConfigError

    if full and config_path is not None:
        raise ConfigError(
            "give --all (every file of the dataset) or --config FILE (the files it reads), not both"
        )
    cfg = load_config(config_path, overrides) if config_path is not None else None
    if root is None and cfg is None:
        raise ConfigError("give --root DIR or --config FILE")
    ok = run_check(
        root if root is not None else Path(cfg.data.root), cfg, log=click.echo, full=full
    )
    sys.exit(0 if ok else 2)


@main.command("build-features")
@config_options
@reports_errors
def build_features(config_path, overrides):
    """Build (or find) the epochs, targets and latents stores of a config."""
    from podbench.features.build import build_features as build
    from podbench.features.preflight import preflight

    cfg = load_config(config_path, overrides)
    preflight(cfg.task_configs())
    from podbench.features.store import BuildReport

    click.echo(BuildReport.HEADER)
    for task_cfg in cfg.task_configs():
        build(task_cfg, log=click.echo)


@main.command()
@config_options
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Electrode CSV to write (subject = NYU id, elec, selected_in).",
)
@reports_errors
def electrodes(config_path, overrides, out):
    """Select electrodes as a config's data.electrodes {select: encoding, ...} says (building
    its targets and selection stores) and write them in the reference's CSV format, which
    data.electrodes: FILE.csv reads back."""
    from podbench.features.build import build_selection_store, nyu_ids
    from podbench.features.context import resolve
    from podbench.features.selection import write_csv
    from podbench.features.store import BuildReport

    ctx = resolve(load_config(config_path, overrides))
    click.echo(BuildReport.HEADER)
    features = build_selection_store(ctx, log=click.echo)
    out.parent.mkdir(parents=True, exist_ok=True)
    table = write_csv(features.load("selection"), nyu_ids(ctx.dataset), out)
    counts = table.groupby("subject").size()
    click.echo(
        "selected per subject (NYU id): " + ", ".join(f"{nyu} {n}" for nyu, n in counts.items())
    )
    click.echo(
        f"figures: {features.stores.path('selection', features.keys['selection'])}"
        "/{electrodes,correlations}.{png,svg}"
    )
    click.echo(f"written: {out} ({len(table)} electrodes)")


@main.command()
@config_options
@click.option("--force", is_flag=True, help="Train again even if complete results exist.")
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="local: in this process; ray: as Ray tasks (pip install 'podbench[cluster]').",
)
@click.option(
    "--address",
    default=None,
    metavar="ADDR",
    help="With --engine ray: the Ray cluster to join (host:port or auto); "
    "default: start a local Ray instance.",
)
@reports_errors
def train(config_path, overrides, force, engine, address):
    """Build missing stores, train every lane, evaluate, write results."""
    from podbench.experiments.config_runs import train_config
    from podbench.experiments.engines import engine as named_engine

    chosen = named_engine(engine, address, click.echo)
    train_config(load_config(config_path, overrides), force=force, log=click.echo, engine=chosen)


@main.command()
@config_options
@click.option(
    "--grid",
    "grid_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="YAML mapping config paths to lists of values.",
)
@click.option(
    "--random",
    "random_n",
    type=int,
    default=None,
    help="Run N random points of the grid instead of all of them.",
)
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="local: programs one after another in this process; ray: store builds and "
    "programs as Ray tasks (pip install 'podbench[cluster]').",
)
@click.option(
    "--address",
    default=None,
    metavar="ADDR",
    help="With --engine ray: the Ray cluster to join (host:port or auto); "
    "default: start a local Ray instance.",
)
@reports_errors
def sweep(config_path, overrides, grid_path, random_n, engine, address):
    """Train every point of a grid; pack per-lane differences as lanes of one program."""
    from podbench.experiments.engines import engine as named_engine
    from podbench.experiments.sweep import sweep as run_sweep

    chosen = named_engine(engine, address, click.echo)
    run_sweep(
        load_config(config_path, overrides), grid_path, random_n, log=click.echo, engine=chosen
    )


@main.command()
@click.option(
    "--suite",
    "suite_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Suite YAML file.",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="[CELLS:]PATH=VALUE",
    help="Override a config field of every cell, or (CELLS:PATH=VALUE) of the cells "
    "named like the glob CELLS, after the suite's own overrides. Repeatable.",
)
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="local: programs one after another in this process; ray: store builds and "
    "programs as Ray tasks (pip install 'podbench[cluster]').",
)
@click.option(
    "--address",
    default=None,
    metavar="ADDR",
    help="With --engine ray: the Ray cluster to join; default: a local Ray instance.",
)
@click.option(
    "--plan",
    "plan_only",
    is_flag=True,
    help="Print each cell's program, lanes, lane-epochs, stores to build and a time "
    "estimate (from its program's calibration, else the runs already in the results root), "
    "then stop: nothing is built, trained or written (but what --calibrate does).",
)
@click.option(
    "--calibrate",
    is_flag=True,
    help="With --plan: first time each program that has no calibration on this machine "
    "yet (its stores built, a few of its lanes trained for 3 epochs, or fitted) and "
    "price it by that.",
)
@click.option(
    "--to-stop",
    is_flag=True,
    help="With --calibrate: also train a few lanes of each program until early stopping "
    "ends them (minutes for a large program), so that the plan knows how many epochs its "
    "lanes train before any run of the task.",
)
@click.option(
    "--verbose",
    is_flag=True,
    help="Also print the closing table of every retrained null point (refit); by default a "
    "null point prints nothing.",
)
@reports_errors
def benchmark(suite_path, overrides, engine, address, plan_only, calibrate, to_stop, verbose):
    """Run a suite: every cell (task x decoder x subjects) with its significance (score-level
    permutations of the held-out predictions; retrained nulls with `refit`), then cell.json
    files, leaderboard.csv and report/index.html. Complete cells are skipped."""
    from podbench.experiments.benchmark import benchmark as run_benchmark
    from podbench.experiments.benchmark import plan
    from podbench.experiments.engines import engine as named_engine

    if calibrate and not plan_only:
        raise click.UsageError("--calibrate goes with --plan")
    if to_stop and not calibrate:
        raise click.UsageError("--to-stop goes with --calibrate")
    if plan_only:
        click.echo(plan(suite_path, overrides, calibrate, log=click.echo, to_stop=to_stop))
        return
    run_benchmark(
        suite_path,
        overrides,
        named_engine(engine, address, click.echo),
        log=click.echo,
        verbose=verbose,
    )


@main.command()
@click.argument("results_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--partial",
    is_flag=True,
    help="Report a benchmark's complete cells although some are missing or damaged "
    "(the report says 'partial: N of M cells'; without it such a folder is "
    "refused, naming them).",
)
@reports_errors
def report(results_dir, partial):
    """Write RESULTS_DIR/report/index.html: a benchmark, sweep or results folder as a static
    HTML report (sortable leaderboard, lag curves, one page per cell)."""
    from podbench.experiments.report import write_report

    write_report(
        results_dir,
        log=click.echo,
        partial=partial,
        warn=lambda line: click.echo(f"warning: {line}", err=True),
    )


@main.command()
@click.argument("cell_a", type=click.Path(path_type=Path))
@click.argument("cell_b", type=click.Path(path_type=Path))
@click.option(
    "--tolerance",
    type=click.FloatRange(min=0),
    default=None,
    metavar="T",
    help="Instead: check that two results folders of the same run id agree, every "
    "metric at every lag and fold within T (absolute); exit 1 if not.",
)
@reports_errors
def compare(cell_a, cell_b, tolerance):
    """Two cells (results folders or their cell.json) of one task: at their shared lag chosen
    on validation, the mean fold difference of the test headline, its 95 % bootstrap interval
    and the paired t-test over folds. With --tolerance: the largest difference of each metric
    between two runs of one id (another machine, thread count or XLA flag)."""
    if tolerance is not None:
        from podbench.experiments.agreement import agreement

        result = agreement(cell_a, cell_b)
        for metric, value in result.differences.sort_values(ascending=False).items():
            click.echo(f"{metric:40s} max |difference| {value:.3g}")
        over = result.exceeding(tolerance)
        verdict = (
            f"agree within {tolerance:g}"
            if over.empty
            else f"differ by more than {tolerance:g} in {len(over)} metric(s): "
            f"{', '.join(over.index)}"
        )
        click.echo(f"run {result.run_id}: {verdict}")
        sys.exit(0 if over.empty else 1)
    from podbench.experiments.records import load_record
    from podbench.experiments.significance import paired_comparison

    a, b = load_record(cell_a), load_record(cell_b)
    r = paired_comparison(a, b)
    click.echo(
        f"{a['cell']} - {b['cell']} on {a['headline']} at {r.lag} ms (chosen on both "
        f"cells' validation mean): {r.a_mean:.4f} - {r.b_mean:.4f} = "
        f"{r.difference:+.4f} [{r.ci_low:+.4f}, {r.ci_high:+.4f}] (95 % bootstrap over "
        f"{r.n_folds} folds), {a['cell']} higher in {r.a_better}; paired t = "
        f"{r.statistic:.3g}, p = {r.p_value:.4g}"
    )


@main.command()
@config_options
@reports_errors
def pretrain(config_path, overrides):
    """Self-supervised pretraining of the ECoG masked autoencoder (unlabelled signal only)."""
    from podbench.features.pretrain import pretrain_command

    pretrain_command(load_config(config_path, overrides), log=click.echo)


@main.command()
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEMO_DATA,
    show_default=True,
    help="Where the demo stand-in lives.",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="PATH=VALUE",
    help="Override a field of the demo config, e.g. --set training.epochs=2.",
)
@click.option("--force", is_flag=True, help="Train again even if complete results exist.")
@reports_errors
def demo(data_dir, overrides, force):
    """Stand-in (made if absent) -> build-features -> train with the demo config
    (configs/demo.yml)."""
    from podbench.experiments.demo import run_demo

    run_demo(data_dir, overrides, force=force, log=click.echo)


@main.group()
def stores():
    """Inspect and maintain the feature stores."""


def store_root(config_path, overrides, root) -> object:
    """The store root of --config, else --stores, else `stores` (output.stores' default)."""
    from podbench.features.store import Stores

    if config_path is not None:
        return Stores(load_config(config_path, overrides).output.stores)
    return Stores(root if root is not None else DEFAULT_STORES)


def root_options(fn):
    fn = click.option(
        "--stores",
        "root",
        type=click.Path(file_okay=False, path_type=Path),
        help=f"Store root (instead of --config; default: {DEFAULT_STORES}).",
    )(fn)
    fn = click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE")(fn)
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Take the store root from this config.",
    )(fn)


@stores.command("ls")
@root_options
@reports_errors
def stores_ls(config_path, overrides, root):
    """List complete stores: stage, key, shape, size, created, config summary."""
    from podbench.features.inspect import listing

    click.echo(listing(store_root(config_path, overrides, root)))


@stores.command("info")
@click.argument("key")
@root_options
@reports_errors
def stores_info(key, config_path, overrides, root):
    """Provenance of one store (KEY may be a unique prefix)."""
    from podbench.features.inspect import info

    click.echo(info(store_root(config_path, overrides, root), key))


@stores.command("verify")
@click.argument("key", required=False)
@root_options
@reports_errors
def stores_verify(key, config_path, overrides, root):
    """Read every chunk and check checksums and completion (all stores, or KEY)."""
    from podbench.features.inspect import verify

    ok = verify(store_root(config_path, overrides, root), key, log=click.echo)
    sys.exit(0 if ok else 1)


@stores.command("gc")
@click.option(
    "--older-than",
    "days",
    type=float,
    default=None,
    help="Also remove complete stores unused for this many days.",
)
@click.option(
    "--results",
    "results_root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also clean this results root (with --config: the config's "
    "output.results is cleaned too).",
)
@click.option(
    "--grace",
    type=float,
    default=600.0,
    show_default=True,
    help="Leave results temporaries younger than this many seconds.",
)
@click.option(
    "--verify",
    "thorough",
    is_flag=True,
    help="Also remove stores that fail `stores verify` (checksums; reads every chunk).",
)
@root_options
@reports_errors
def stores_gc(days, results_root, grace, thorough, config_path, overrides, root):
    """Remove leftovers of interrupted builds and runs (temporary folders, stale lock files),
    damaged stores (a chunk missing or resized; rebuild them with build-features) and, with
    --older-than, unused stores."""
    from podbench.publish import clean_tree

    if config_path is not None and results_root is None:
        results_root = Path(load_config(config_path, overrides).output.results).expanduser()
    removed = store_root(config_path, overrides, root).gc(days, thorough)
    if results_root is not None:
        removed += clean_tree(results_root, grace)
    for path in removed:
        click.echo(f"removed {path}")
    click.echo(f"{len(removed)} removed")


@main.command()
@click.argument("run_a", type=click.Path(path_type=Path))
@click.argument("run_b", type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the table to this CSV file.",
)
@reports_errors
def multimodal(run_a, run_b, out):
    """Harmonic mean 2ab/(a+b) of two runs' test pairwise accuracy, per lag; the lag is
    chosen on the same harmonic mean of their validation pairwise accuracy.

    RUN_A and RUN_B are results folders (or their lag_performance.csv), e.g. a word-embedding
    run and a whisper_embedding run; they are joined on `lags`.
    """
    from podbench.experiments.multimodal import chosen_lag, multimodal_score

    table = multimodal_score(run_a, run_b)
    click.echo(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    lag, test, val = chosen_lag(table)
    click.echo(
        f"lag chosen on validation: {lag} ms (validation multimodal score {val:.4f}); "
        f"test multimodal score there: {test:.4f}"
    )
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(out, index=False)
        click.echo(f"written: {out}")


if __name__ == "__main__":
    main()
