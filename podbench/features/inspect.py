"""Human-readable views of a store root: `podbench stores ls | info | verify`."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable

from podbench.features.keys import SHORT
from podbench.features.store import Stores, dir_size, human_bytes
from podbench.progress import progress

MAIN_VARIABLE = {"epochs": "ecog", "targets": "target", "latents": "latent", "selection": "r"}


def summary(stage: str, fragment: dict) -> str:
    """One line saying what a store holds, from its config fragment."""
    if stage == "epochs":
        lags = fragment["lags"]
        sel = fragment["electrodes"] or "all good channels"
        if isinstance(sel, dict) and "selection" in sel:
            sel = f"electrodes of selection {sel['selection'][:SHORT]} (fit {sel['fit']})"
        return (
            f"subjects {fragment['subjects']}, {sel}, {fragment['signal']}, "
            f"w={fragment['window_width']}s, lags {lags['min']}..{lags['max']} step {lags['step']}"
        )
    if stage == "targets":
        fields = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in fragment.get("fields", {}).items())
        if "kind" not in fragment:  # a task's own targets
            return f"task {fragment.get('task')} {json.dumps(fragment.get('params', {}))}"
        return (
            f"{fragment['kind']}{' (' + fields + ')' if fields else ''}, "
            f"pca {fragment.get('pca_dim')} fit {fragment.get('pca_fit')}"
        )
    if stage == "selection":
        st = fragment["settings"]
        return (
            f"{st['select']} fit {st['fit']}, {st['start']}..{st['stop']} ms, "
            f"{st['correction']} alpha {st['alpha']}, {st['permutations']} shifts; "
            f"subjects {fragment['data']['subjects']}"
        )
    if stage == "latents":
        return f"{fragment['name']} {json.dumps(fragment['params'], sort_keys=True)}"
    return json.dumps(fragment, sort_keys=True)[:80]


def listing(stores: Stores) -> str:
    rows = [f"{'stage':<9} {'key':<12} {'shape':<22} {'size':>9}  {'created':<25} config"]
    for stage, key, path, marker in stores.complete_stores():
        shape = "x".join(map(str, marker.get("arrays", {}).get(MAIN_VARIABLE.get(stage, ""), [])))
        size = dir_size(path)
        rows.append(
            f"{stage:<9} {key[:SHORT]:<12} {shape:<22} {human_bytes(size):>9}  "
            f"{marker.get('created', '?'):<25} {summary(stage, marker.get('fragment', {}))}"
        )
    for digest in sorted((stores.root / "pretrain").glob("*/digest")):  # pretrained models
        folder = digest.parent
        try:
            meta = json.loads((folder / "config.json").read_text())
        except (OSError, ValueError):
            continue
        created = dt.datetime.fromtimestamp(digest.stat().st_mtime, dt.UTC)
        arch = meta.get("architecture", {})
        rows.append(
            f"{'pretrain':<9} {folder.name[:SHORT]:<12} {'':<22} "
            f"{human_bytes(dir_size(folder)):>9}  "
            f"{created.isoformat(timespec='seconds'):<25} masked autoencoder width "
            f"{arch.get('width')}, depth {arch.get('depth')}, "
            f"{meta.get('pretrain', {}).get('steps')} steps"
        )
    leftovers = stores.leftovers()
    if leftovers:
        rows.append(f"({len(leftovers)} incomplete leftover(s): `podbench stores gc` removes them)")
    if len(rows) == 1:
        rows.append(f"(no complete store under {stores.root})")
    return "\n".join(rows)


def info(stores: Stores, prefix: str) -> str:
    stage, key, path, marker = stores.find(prefix)
    lines = [f"path: {path}"]
    for name in ("stage", "key", "created", "host", "podbench_version"):
        lines.append(f"{name}: {marker.get(name)}")
    lines.append(f"parents: {json.dumps(marker.get('parents', {}))}")
    lines.append(f"fragment: {json.dumps(marker.get('fragment', {}), indent=1, sort_keys=True)}")
    lines.append(f"arrays: {json.dumps(marker.get('arrays', {}))}")
    lines.append("sources:")
    for label, size, digest in marker.get("sources", []):
        lines.append(f"  {label}  {human_bytes(size)}  sha256 {digest[:SHORT]}")
    dropped = marker.get("dropped_words")
    if dropped is not None:
        lines.append(f"dropped words: {len(dropped)}")
    return "\n".join(lines)


def verify(stores: Stores, prefix: str | None, log: Callable[[str], None] = print) -> bool:
    """Check every (or one) store; log one line per store; True when all are sound."""
    stores.require_root()
    targets = [stores.find(prefix)] if prefix else stores.complete_stores()
    ok = True
    bar = progress(sum(dir_size(path) for _, _, path, _ in targets), "verifying stores", unit="B")
    for stage, key, path, _ in targets:
        problems = stores.verify(path)
        bar.update(dir_size(path))
        log(f"{stage:<9} {key[:SHORT]}  {'ok' if not problems else 'CORRUPT'}")
        for problem in problems:
            log(f"  {problem}")
        ok &= not problems
    bar.close()
    for leftover in stores.leftovers():
        log(f"incomplete leftover (not a store): {leftover}")
    return ok
