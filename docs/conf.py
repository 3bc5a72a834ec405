"""Sphinx configuration of podbench's documentation site.

Build it from the repository root:

    sphinx-build -b html docs docs/_build/html              # runs the gallery (a few minutes)
    sphinx-build -b html -D plot_gallery=0 docs docs/_build/html   # pages only, no example run
    python -m http.server -d docs/_build/html 8000          # then open http://localhost:8000
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
sys.path.insert(0, str(REPO))  # the podbench of this checkout
sys.path.insert(0, str(DOCS / "_ext"))  # podbench_docs: the generated configuration reference
sys.path.insert(0, str(REPO / "examples"))  # the gallery's helper, _standin.py
os.environ.setdefault("MPLBACKEND", "Agg")

import podbench  # noqa: E402

project = "podbench"
author = "the podbench authors"
copyright = "podbench authors, MIT licence"
release = version = getattr(podbench, "__version__", "0.1.0")

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
    "podbench_docs",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = [
    "_build",
    "**.ipynb_checkpoints",
    "auto_examples/*.ipynb",
    "auto_examples/*.py",
    "auto_examples/*.zip",
    "auto_examples/*.json",
    "auto_examples/*.md5",
    "sg_execution_times.rst",
]
templates_path = []

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
suppress_warnings = ["myst.header"]

autosummary_generate = True
autodoc_default_options = {"members": True, "show-inheritance": False}
autodoc_typehints = "none"
autodoc_member_order = "bysource"
# podbench.api re-exports podbench.config's load and from_dict: following them makes viewcode
# give every podbench.config source link a podbench.api anchor that does not exist
viewcode_follow_imported_members = False
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
# numpydoc validation of every docstring the API reference (api.rst) documents; with -W (the
# test, CI) a failing check fails the build. The checks: the docstring exists (GL08; __init__
# excluded, its class documents the parameters) and parses as numpydoc (GL06 unknown section,
# GL07 sections out of order); a one-sentence summary with a capital and a period (SS01-SS03);
# every parameter documented, none that does not exist, in order, each with a description and
# a space before its colon (PR01-PR03, PR07, PR10); a Returns section where it returns
# something, with a description (RT01, RT03); Yields for a generator (YD01). Left out as
# stylistic or not met by the rest of the package: the summary on one line and the closing
# quotes on their own line (SS06, GL02, GL03), the imperative mood (SS05), capitals and
# periods of descriptions (PR08, PR09, RT04, RT05), See Also and Examples on everything
# (SA01, EX01), an extended summary (ES01), parameter types written numpydoc's way (PR06).
numpydoc_validation_checks = {
    "GL06",
    "GL07",
    "GL08",
    "SS01",
    "SS02",
    "SS03",
    "PR01",
    "PR02",
    "PR03",
    "PR07",
    "PR10",
    "RT01",
    "RT03",
    "YD01",
}
# __init__, and the specs' function-valued fields (documented in their class's Parameters;
# autodoc lists a field whose default is a function as a method)
numpydoc_validation_exclude = {
    r"\.__init__$",
    r"^podbench\.specs\.\w+Spec\.(standardise|sources|depends|dims|dataset_files)$",
}

intersphinx_mapping = {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable", None),
    "pandas": ("https://pandas.pydata.org/docs", None),
    "xarray": ("https://docs.xarray.dev/en/stable", None),
}
# no network while building (CI, the test): the inventories are only used when present
intersphinx_disabled_reftypes = ["*"]
if os.environ.get("PODBENCH_DOCS_INTERSPHINX") != "1":
    intersphinx_mapping = {}

html_theme = "pydata_sphinx_theme"
html_title = "podbench"
html_static_path = ["_static"]
html_favicon = "_static/favicon.svg"  # browsers ask for one; without it, a 404 on every page
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "header_links_before_dropdown": 8,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_show_sourcelink = False

# A failing example fails the build: sphinx-gallery runs every example, then raises naming
# each one that failed (abort_on_example_error: False, so one run reports all of them;
# only_warn_on_example_error: False, so they are errors, not warnings).
# PODBENCH_GALLERY_ONLY=REGEX runs only the examples whose path matches it (the others' pages
# are made without running them): tests/test_docs.py runs one planted failing example so.
sphinx_gallery_conf = {
    "examples_dirs": str(REPO / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": os.environ.get("PODBENCH_GALLERY_ONLY", r"/plot_"),
    "ignore_pattern": r"_standin\.py",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "plot_gallery": "True",
    "abort_on_example_error": False,
    "only_warn_on_example_error": False,
    "matplotlib_animations": False,
    "reset_modules": ("matplotlib",),
    "min_reported_time": 5,
}
