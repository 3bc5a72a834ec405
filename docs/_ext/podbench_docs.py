"""A small Sphinx extension: the configuration reference, generated from the code.

``.. podbench-config::`` renders every field of :class:`podbench.config.Config` (path,
default, meaning) from :func:`podbench.config.describe_fields`; ``.. podbench-params:: models``
(or ``preprocessors``) renders each registered entry's parameter dataclass the same way. The
tables are made while the site builds, so they cannot drift from the dataclasses;
tests/test_docs.py checks that every config field appears.
"""

from __future__ import annotations

import dataclasses
import typing

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _literal(text: str) -> str:
    text = _cell(text)
    return f"``{text}``" if text else ""


def list_table(header: list[str], rows: list[list[str]], widths: str) -> list[str]:
    """reStructuredText of a list-table."""
    out = [".. list-table::", "   :header-rows: 1", f"   :widths: {widths}", ""]
    for row in [header, *rows]:
        out.append(f"   * - {row[0] or ' '}")
        out += [f"     - {cell or ' '}" for cell in row[1:]]
    return out


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
    """(name, parameter dataclass or None, metadata) of every entry of a registry."""
    from podbench import registry

    reg = getattr(registry, kind)
    out = []
    for name in reg.names():
        entry = reg._entries[name]  # the metadata only: declared decoders import no JAX
        meta = dict(entry.meta)
        out.append((name, meta.get("params"), meta))
    return out


class ConfigTable(SphinxDirective):
    """Every config field: path, default, meaning."""

    def run(self):
        rows = [[f"``{path}``", _literal(default), _cell(doc)] for path, default, doc in
                config_rows()]
        return self._parse(list_table(["field", "default", "meaning"], rows, "25 15 60"))

    def _parse(self, lines: list[str]):
        node = nodes.container()
        self.state.nested_parse(StringList(lines, source="podbench-config"), self.content_offset,
                                node)
        return node.children


class ParamsTables(SphinxDirective):
    """One section per registered entry of a registry (models, preprocessors) with the fields
    of its parameter dataclass."""

    required_arguments = 1

    def run(self):
        kind = self.arguments[0]
        lines: list[str] = []
        for name, schema, meta in registry_params(kind):
            lines += [f".. rubric:: ``{name}``", ""]
            extra = ", ".join(f"{k}: ``{_cell(v)}``" for k, v in sorted(meta.items())
                              if k in ("input_dims", "dims", "closed_form", "classifier",
                                       "takes_targets", "uses_frozen") and v)
            if extra:
                lines += [extra, ""]
            if schema is None:
                lines += ["No parameters.", ""]
                continue
            rows = [[f"``{n}``", _literal(t), _literal(d), _cell(doc)]
                    for n, t, d, doc in param_rows(schema)]
            lines += list_table(["parameter", "type", "default", "meaning"], rows,
                                "20 20 20 40") + [""]
        node = nodes.container()
        self.state.nested_parse(StringList(lines, source=f"podbench-params {kind}"),
                                self.content_offset, node)
        return node.children


def setup(app):
    app.add_directive("podbench-config", ConfigTable)
    app.add_directive("podbench-params", ParamsTables)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
