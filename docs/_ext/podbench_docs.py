"""A small Sphinx extension: the configuration reference, generated from the code.

``.. podbench-config::`` renders every field of :class:`podbench.config.Config` (path,
default, meaning) from :func:`podbench.config.describe_fields`; ``.. podbench-params:: models``
(or ``preprocessors``, ``target_sources``, ``tasks``) renders each registered entry's parameter
dataclass the same way. The
tables are made while the site builds, so they cannot drift from the dataclasses;
tests/test_docs.py checks that every config field appears.
"""

from __future__ import annotations

import dataclasses
import typing

from docutils import nodes
from sphinx.util.docutils import SphinxDirective


def _cell(text) -> str:
    return " ".join(str(text).split())


def config_rows() -> list[tuple[str, str, str]]:
    """(path, default, meaning) of every config field, as the page shows them."""
    from podbench.config import describe_fields

    return [(path, default, doc) for path, default, doc in describe_fields()]


def _type_name(hint) -> str:
    name = getattr(hint, "__name__", None)
    if typing.get_origin(hint) is typing.Literal:
        return " | ".join(repr(v) for v in typing.get_args(hint))
    return name if name and not typing.get_args(hint) else str(hint).replace("typing.", "")


def param_rows(schema) -> list[tuple[str, str, str, str]]:
    """(name, type, default, meaning) of a parameter dataclass."""
    rows = []
    hints = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        if f.default is not dataclasses.MISSING:
            default = repr(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            default = repr(f.default_factory())
        else:
            default = "(required)"
        rows.append((f.name, _type_name(hints[f.name]), default, f.metadata.get("doc", "")))
    return rows


def registry_params(kind: str) -> list[tuple[str, object | None, dict]]:
    """(name, parameter dataclass or None, spec fields) of every entry of a registry, read
    from its typed spec (podbench.specs)."""
    from podbench import registry

    reg = getattr(registry, kind)
    out = []
    for name in reg.names():
        spec = reg.spec(name)  # the spec only: declared decoders import no JAX
        meta = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}
        if hasattr(spec, "closed_form"):
            meta["closed_form"] = spec.closed_form
        out.append((name, meta.get("params"), meta))
    return out


def table(header: list[str], rows: list[list[tuple[str, bool]]], widths: list[int]):
    """A docutils table node: `rows` of cells (text, shown as code); built as nodes, not
    parsed, so it renders the same in reStructuredText and Markdown (MyST) pages."""
    tbl = nodes.table(classes=["podbench-table"])
    group = nodes.tgroup(cols=len(header))
    tbl += group
    for width in widths:
        group += nodes.colspec(colwidth=width)

    def row(cells):
        out = nodes.row()
        for text, code in cells:
            para = nodes.paragraph()
            if text:
                para += nodes.literal(text, text) if code else nodes.Text(text)
            out += nodes.entry("", para)
        return out

    head = nodes.thead()
    head += row([(h, False) for h in header])
    body = nodes.tbody()
    for cells in rows:
        body += row(cells)
    group += head
    group += body
    return tbl


class ConfigTable(SphinxDirective):
    """Every config field: path, default, meaning."""

    def run(self):
        rows = [
            [(path, True), (_cell(default), True), (_cell(doc), False)]
            for path, default, doc in config_rows()
        ]
        return [table(["field", "default", "meaning"], rows, [25, 15, 60])]


class ParamsTables(SphinxDirective):
    """One table per registered entry of a registry (models, preprocessors, target sources,
    tasks) with the fields of its parameter dataclass."""

    required_arguments = 1

    def run(self):
        kind = self.arguments[0]
        out = []
        for name, schema, meta in registry_params(kind):
            rubric = nodes.rubric()
            rubric += nodes.literal(name, name)
            out.append(rubric)
            extra = ", ".join(
                f"{k}: {_cell(', '.join(v) if isinstance(v, tuple) else v)}"
                for k, v in sorted(meta.items())
                if k
                in (
                    "input_dims",
                    "dims",
                    "closed_form",
                    "classifier",
                    "takes_targets",
                    "uses_frozen",
                    "fields",
                )
                and v
                and not callable(v)  # a target source's dims: a function of the config
            )
            if extra:
                out.append(nodes.paragraph(text=extra))
            if schema is None:
                out.append(nodes.paragraph(text="No parameters."))
                continue
            rows = [
                [(n, True), (_cell(t), True), (_cell(d), True), (_cell(doc), False)]
                for n, t, d, doc in param_rows(schema)
            ]
            out.append(table(["parameter", "type", "default", "meaning"], rows, [20, 20, 20, 40]))
        return out


def setup(app):
    app.add_directive("podbench-config", ConfigTable)
    app.add_directive("podbench-params", ParamsTables)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
