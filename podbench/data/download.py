"""`podbench download`: fetch exactly the ds005574 files a config (or named parts) needs.

The files go through openneuro-py (the `[data]` extra). It skips files that are already
complete and resumes partial ones, so running the same command again finishes an interrupted
download; it draws a progress bar per file and overall.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path

from podbench.data.layout import DATASET, TAG, Plan
from podbench.errors import ConfigError, DataError

S3 = f"s3://openneuro.org/{DATASET}"
GIT_MIRROR = f"https://github.com/OpenNeuroDatasets/{DATASET}.git"


def human(size: int) -> str:
    """Bytes as B / kB / MB / GB (powers of 1000)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def listing(plan: Plan, to: Path) -> list[str]:
    """One line per file (size, path), then the total."""
    lines = [f"{human(plan.size(p)):>9}  {p}" for p in plan.files]
    lines.append(f"{human(plan.total):>9}  total: {len(plan.files)} files of {DATASET} {TAG} "
                 f"into {to}")
    return lines + [f"note: {n}" for n in plan.notes]


def equivalent_commands(plan: Plan, to: Path) -> list[str]:
    """The same download with openneuro-py's CLI, datalad, and the AWS CLI."""
    q = shlex.quote
    includes = " ".join(f"--include {q(p)}" for p in plan.files)
    return [
        f"openneuro-py download --dataset {DATASET} --tag {TAG} --target-dir {q(str(to))} "
        f"{includes}",
        f"datalad clone {GIT_MIRROR} {q(str(to))} && git -C {q(str(to))} checkout {TAG} && "
        f"datalad get -d {q(str(to))} "
        + " ".join(q(str(to / p)) for p in plan.files),
        f"aws s3 sync --no-sign-request {S3} {q(str(to))} --exclude '*' "
        + " ".join(f"--include {q(p)}" for p in plan.files),
    ]


def check_sizes(plan: Plan, to: Path) -> list[str]:
    """One line per planned file that is missing or not of its known size."""
    problems = []
    for path in plan.files:
        local = to / path
        if not local.is_file():
            problems.append(f"{local}: missing after the download")
        elif local.stat().st_size != plan.size(path):
            problems.append(f"{local}: {local.stat().st_size} bytes, expected "
                            f"{plan.size(path)} ({DATASET} {TAG})")
    return problems


def download(plan: Plan, to: str | Path, dry_run: bool = False,
             log: Callable[[str], None] = print) -> None:
    """Print the plan, then fetch its files with openneuro-py (resumable) and check their sizes."""
    to = Path(to)
    for line in listing(plan, to):
        log(line)
    if dry_run:
        return
    try:
        import openneuro
    except ImportError:
        log("equivalent commands:")
        for command in equivalent_commands(plan, to):
            log(f"  {command}")
        raise ConfigError("openneuro-py is not installed: pip install 'podbench[data]' "
                          "(or run one of the equivalent commands above)") from None
    to.mkdir(parents=True, exist_ok=True)
    log("downloading with openneuro-py (complete files are skipped, partial ones resumed)")
    openneuro.download(dataset=DATASET, tag=TAG, target_dir=to, include=list(plan.files))
    problems = check_sizes(plan, to)
    if problems:
        raise DataError(f"{len(problems)} file(s) incomplete; run the same command again to "
                        f"resume: {'; '.join(problems)}")
    log(f"done: {len(plan.files)} files, {human(plan.total)}, sizes as in {DATASET} {TAG}")
