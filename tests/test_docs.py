"""Every example of README.md and of the documentation site runs as written, and the site
builds without warnings.

The walk copies the repository's tracked files to a fresh folder, runs `podbench demo` there,
then every ```bash and ```python block of README.md and of the site's Markdown pages
(`PAGES`, in the order of the site's navigation), each from the copy's root, reduced through
PODBENCH_SET (which the configuration reference documents). A block right after an HTML
comment `<!-- no-run: why -->` is skipped (installs, the test suite, Ray clusters, the real
dataset); a ```python or ```yaml block whose first line is `# PATH.py` / `# PATH.yml` is a
file the text asks for, and is written to PATH instead of run. The gallery's examples
(examples/plot_*.py) are run by the full site build (`sphinx-build docs ...`), not here.

The site is built once (`-W`, gallery not run): numpydoc checks of the API reference's
docstrings and broken references are errors; every internal link of the built HTML must
resolve; headless Chromium reads the pages of its navigation over HTTP. A planted failing
example must fail the build.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import threading
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from podbench.cli import DEMO_DATA
from podbench.data.synth import synthesize
from podbench.experiments.demo import DEMO_DURATION

REPO = Path(__file__).resolve().parents[1]
SUBJECTS = [3, 6]  # the subjects the examples train on
REDUCED = (
    "training.epochs=1 model.members=1 data.lags.min=0 data.lags.max=400 "
    f"data.subjects=[{','.join(map(str, SUBJECTS))}] pretrain.steps=4"
)
FILE = re.compile(r"#\s*(\S+\.(?:py|ya?ml))\s*$")
# README first, then the site's pages in the order of its navigation (docs/index.md and
# docs/user_guide/index.md): later blocks use what earlier ones made
PAGES = [
    "README.md",
    "docs/index.md",
    "docs/getting_started.md",
    "docs/user_guide/index.md",
    "docs/user_guide/pipeline.md",
    "docs/user_guide/tasks.md",
    "docs/user_guide/decoders.md",
    "docs/user_guide/sweeps.md",
    "docs/user_guide/benchmarking.md",
    "docs/user_guide/foundation.md",
    "docs/user_guide/cluster.md",
    "docs/user_guide/real_data.md",
    "docs/user_guide/electrodes.md",
    "docs/user_guide/parity.md",
    "docs/extending.md",
    "docs/configuration.md",
    "docs/benchmarks.md",
    "docs/changelog.md",
]
SKIP_DIRS = ("_build", "generated", "auto_examples", "_ext")


def readme_blocks(text: str) -> list[tuple[str, str, bool]]:
    """(language, body, skipped) of every fenced block, in order (MyST directives such as
    ```{include} count as blocks of language "{include}")."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        fence = re.match(r"^```(\S*)(?:\s.*)?$", lines[i])
        if not fence:
            i += 1
            continue
        before = next((line for line in reversed(lines[:i]) if line.strip()), "")
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        out.append(
            (
                fence.group(1),
                "\n".join(lines[i + 1 : end]) + "\n",
                before.strip().startswith("<!-- no-run"),
            )
        )
        i = end + 1
    return out


def doc_pages() -> list[Path]:
    """Every source page of the site (Markdown and reStructuredText) outside build output."""
    docs = REPO / "docs"
    return sorted(
        p
        for p in docs.rglob("*")
        if p.suffix in (".md", ".rst")
        and not any(part in SKIP_DIRS for part in p.relative_to(docs).parts)
    )


def test_pages_are_walked():
    """Every page of the site is in PAGES (so its blocks run), and no reStructuredText page
    hides a code block the walk would not see."""
    listed = {REPO / p for p in PAGES}
    missing = [
        str(p.relative_to(REPO)) for p in doc_pages() if p.suffix == ".md" and p not in listed
    ]
    assert not missing, f"pages not in tests/test_docs.py PAGES: {missing}"
    for page in doc_pages():
        if page.suffix == ".rst":
            assert not re.search(r"code-block::\s*(bash|python)|^::\s*$", page.read_text(), re.M)
    assert all((REPO / p).is_file() for p in PAGES)


def test_blocks_are_found_and_marked():
    blocks = [b for page in PAGES for b in readme_blocks((REPO / page).read_text())]
    runnable = [b for b in blocks if b[0] in ("bash", "python") and not b[2]]
    assert len(runnable) >= 12
    assert any(FILE.match(body.splitlines()[0]) for lang, body, _ in blocks if lang == "python")
    assert all(skip for lang, body, skip in blocks if "pip install" in body)
    assert all(skip for lang, body, skip in blocks if "podbench download" in body)
    readme = readme_blocks((REPO / "README.md").read_text())
    assert any("python -m pytest -q -n 2 --dist loadfile" in body for _, body, _ in readme)


def test_readme_is_one_screen_and_points_at_the_built_site():
    """README.md: at most 150 lines, says how to build and serve the site, and every relative
    link of it names a file or folder of the repository."""
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    bodies = [body for _, body, _ in readme_blocks(text)]
    assert any(
        "sphinx-build -b html docs docs/_build/html" in b and "python -m http.server" in b
        for b in bodies
    )
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    local = [link for link in links if not re.match(r"[a-z]+:", link)]
    assert len(local) >= 8
    missing = [link for link in local if not (REPO / link.split("#")[0]).exists()]
    assert missing == [], missing


def test_configuration_reference_lists_every_field():
    """The configuration page renders its table from config.describe_fields (docs/_ext), so
    every field is there by construction; check the page uses the generator and the generator
    covers every field and every registered decoder, preprocessor and task parameter set."""
    from podbench import config

    sys.path.insert(0, str(REPO / "docs" / "_ext"))
    try:
        import podbench_docs
    finally:
        sys.path.remove(str(REPO / "docs" / "_ext"))
    page = (REPO / "docs" / "configuration.md").read_text()
    assert "```{podbench-config}" in page
    for kind in ("models", "preprocessors", "tasks"):
        assert "```{podbench-params} " + kind in page
    rows = podbench_docs.config_rows()
    assert [r[0] for r in rows] == [path for path, _, _ in config.describe_fields()]
    assert all(doc for _, _, doc in rows), "a config field without its doc= text"
    names = {name for name, _, _ in podbench_docs.registry_params("models")}
    assert {"pitom", "mlp", "ridge", "linear", "time_pool", "llm_prefix"} <= names
    pitom = dict(
        (n, d)
        for n, _, d, _ in podbench_docs.param_rows(
            next(s for n, s, _ in podbench_docs.registry_params("models") if n == "pitom")
        )
    )
    assert pitom["filters"] == "128"


def tracked_copy(dest: Path) -> Path:
    names = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in names:
        if not (REPO / name).is_file():  # deleted in the working tree, not yet committed
            continue
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, dest / name)
    return dest


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> tuple[Path, Path]:
    """(clean copy, built HTML) of `sphinx-build -W` on a copy of the tracked files, the
    gallery not run: built once for the build test and the browser test."""
    for module in ("sphinx", "pydata_sphinx_theme", "sphinx_gallery", "numpydoc", "myst_parser"):
        pytest.importorskip(module, reason=f"{module} is not installed (pip install -e '.[docs]')")
    tmp = tmp_path_factory.mktemp("site")
    repo = tracked_copy(tmp / "clone")
    out = tmp / "html"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            "-D",
            "plot_gallery=0",
            "docs",
            str(out),
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(repo), "MPLBACKEND": "Agg"},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return repo, out


def test_site_builds_without_warnings(site):
    """sphinx-build -W on a clean copy, the gallery not run (the pages, the generated
    configuration reference and the API reference; broken references, and docstrings of the
    API reference that fail docs/conf.py's numpydoc checks, are errors)."""
    repo, out = site
    for page in (
        "index.html",
        "configuration.html",
        "api.html",
        "auto_examples/index.html",
        "user_guide/benchmarking.html",
        "searchindex.js",
    ):
        assert (out / page).is_file(), page
    config_page = (out / "configuration.html").read_text()
    assert "training.permutation_seed" in config_page and "num_average_samples" in config_page
    assert config_page.count("<table") >= 10  # the fields, and each decoder's parameters
    examples = sorted((repo / "examples").glob("plot_*.py"))
    assert len(examples) >= 8
    for example in examples:
        assert (out / "auto_examples" / (example.stem + ".html")).is_file()


def test_a_failing_example_fails_the_build(tmp_path):
    """A gallery example that raises fails `sphinx-build` (docs/conf.py's sphinx-gallery
    settings), naming it; only the planted example is run (PODBENCH_GALLERY_ONLY)."""
    for module in ("sphinx", "pydata_sphinx_theme", "sphinx_gallery", "numpydoc", "myst_parser"):
        pytest.importorskip(module, reason=f"{module} is not installed (pip install -e '.[docs]')")
    repo = tracked_copy(tmp_path / "clone")
    (repo / "examples" / "plot_99_fails.py").write_text(
        '"""\nA planted failure\n=================\n\nRaises.\n"""\n\n'
        'raise RuntimeError("planted gallery failure")\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-q", "-b", "html", "docs", str(tmp_path / "html")],
        cwd=repo,
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "PYTHONPATH": str(repo),
            "MPLBACKEND": "Agg",
            "PODBENCH_GALLERY_ONLY": r"/plot_99_fails\.py$",
        },
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0, output[-3000:]
    assert "plot_99_fails.py" in output and "planted gallery failure" in output, output[-3000:]


class _Page(HTMLParser):
    """The ids (link targets) of an HTML page and the URLs it refers to."""

    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name" if tag == "a" else None):
            if attrs.get(key):
                self.ids.add(attrs[key])
        for key in ("href", "src"):
            if attrs.get(key) and tag in ("a", "link", "script", "img", "source", "iframe"):
                self.links.append(attrs[key])


def broken_links(out: Path) -> tuple[int, list[str]]:
    """(internal links checked, the broken ones) of every HTML file of a built site: each
    relative href/src must name an existing file, and a #fragment into a page one of its ids.
    No network: external URLs are not followed."""
    pages = {}
    for html in out.rglob("*.html"):
        if html.relative_to(out).parts[0] == "_static":
            continue  # the theme's templates (webpack-macros.html), not pages
        parsed = _Page()
        parsed.feed(html.read_text(errors="replace"))
        pages[html.resolve()] = parsed
    checked, broken = 0, []
    for page, parsed in pages.items():
        for link in parsed.links:
            url = urlsplit(link)
            if url.scheme or url.netloc or link.startswith("//"):
                continue  # external (https:, mailto:, data:, ...)
            target = (page.parent / unquote(url.path)).resolve() if url.path else page
            if url.path.endswith("/") or target.is_dir():
                target = target / "index.html"
            checked += 1
            where = f"{page.relative_to(out.resolve())}: {link}"
            if not target.is_file():
                broken.append(where + " (no such file)")
            elif (
                url.fragment and target in pages and unquote(url.fragment) not in pages[target].ids
            ):
                broken.append(where + " (no such anchor)")
    return checked, broken


def test_site_links_resolve(site):
    """No internal link of the built site (pages, API reference, gallery, sources) is broken."""
    _, out = site
    checked, broken = broken_links(out)
    assert checked > 1000
    assert broken == [], "\n".join(broken[:40])


@contextlib.contextmanager
def serve(folder: Path):
    """The folder over HTTP on a free loopback port, as `python -m http.server` serves it;
    yields (base URL, the (path, status) of every request)."""
    requests: list[tuple[str, int]] = []

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(folder), **kwargs)

        def log_request(self, code="-", size="-"):
            requests.append((self.path, int(getattr(code, "value", code))))

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/", requests
    finally:
        server.shutdown()
        server.server_close()


def test_site_in_a_headless_browser(site):
    """The built site (no gallery run) served over HTTP and read in headless Chromium: every
    page reachable from the navigation loads with no console error or warning, no request of
    it fails, its images decode; the API and configuration references show their tables and
    the search finds a page."""
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.test_benchmark import browser

    _, out = site
    driver = browser()
    try:
        with serve(out) as (base, requests):
            driver.get(base + "index.html")
            driver.get_log("browser")  # start from an empty log
            seen, queue = set(), ["index.html"]
            while queue:
                page = queue.pop(0)
                if page in seen:
                    continue
                seen.add(page)
                driver.get(base + page)
                assert driver.execute_script("return document.readyState") == "complete"
                errors = [
                    e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")
                ]
                assert errors == [], (page, errors)
                assert driver.find_elements("css selector", "article.bd-article"), page
                broken = driver.execute_script(
                    "return Array.from(document.images).filter(i => !(i.complete && "
                    "i.naturalWidth > 0)).map(i => i.src)"
                )
                assert broken == [], (page, broken)
                for href in driver.execute_script(
                    "return Array.from(document.querySelectorAll('nav a[href]')).map(a => a.href)"
                ):
                    path = href.split("#")[0]
                    if path.startswith(base) and path.endswith(".html"):
                        queue.append(path[len(base) :])
            expected = {
                "index.html",
                "getting_started.html",
                "user_guide/index.html",
                "extending.html",
                "configuration.html",
                "api.html",
                "benchmarks.html",
                "changelog.html",
                "auto_examples/index.html",
            }
            expected |= {f"user_guide/{p.stem}.html" for p in (out / "user_guide").glob("*.html")}
            assert expected <= seen, sorted(expected - seen)

            driver.get(base + "api.html")
            tables = driver.find_elements("css selector", "table.autosummary")
            assert len(tables) >= 6 and all(t.is_displayed() for t in tables)
            names = [
                a.text
                for a in driver.find_elements("css selector", "table.autosummary td:first-child a")
            ]
            assert {"train", "load_run", "SavedRun", "load"} <= set(names), names
            driver.get(base + "configuration.html")
            tables = driver.find_elements("css selector", "table.podbench-table")
            assert len(tables) >= 10 and all(t.is_displayed() for t in tables)
            from podbench.config import describe_fields

            rows = tables[0].find_elements("css selector", "tbody tr")
            assert len(rows) == len(describe_fields())

            driver.get(base + "search.html?q=permutation")
            WebDriverWait(driver, 20).until(
                lambda d: d.find_elements("css selector", "#search-results ul.search li")
            )
            assert any(
                "benchmarking" in a.get_attribute("href")
                for a in driver.find_elements("css selector", "#search-results ul.search li a")
            )
            errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
            assert errors == [], errors
        failed = [(path, code) for path, code in requests if code >= 400 and path != "/favicon.ico"]
        assert failed == [], failed
        assert len(seen) >= 20
    finally:
        driver.quit()


@pytest.mark.slow
def test_examples_run_verbatim(tmp_path):
    repo = tracked_copy(tmp_path / "clone")
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PODBENCH_SET": REDUCED,
        "PYTHONPATH": str(repo),
        "MPLBACKEND": "Agg",
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
    }

    def run(argv: list[str], what: str) -> None:
        done = subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"{what} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"

    # the demo's stand-in of the SUBJECTS only: `podbench demo` makes all nine where it finds
    # none (15 s more, for subjects no block reads; CI's wheel demo makes them)
    synthesize(repo / DEMO_DATA, subjects=SUBJECTS, duration=DEMO_DURATION)
    run(["podbench", "demo"], "podbench demo")
    ran = 0
    for page in PAGES:
        for lang, body, skipped in readme_blocks((repo / page).read_text()):
            if skipped or lang not in ("bash", "python", "yaml", "yml"):
                continue
            first = body.splitlines()[0] if body.strip() else ""
            named = FILE.match(first)
            if named:
                (repo / named.group(1)).parent.mkdir(parents=True, exist_ok=True)
                (repo / named.group(1)).write_text(body)
            elif lang == "bash":
                run(["bash", "-euo", "pipefail", "-c", body], f"{page} block\n{body}")
                ran += 1
            elif lang == "python":
                run([sys.executable, "-c", body], f"{page} block\n{body}")
                ran += 1
    assert ran >= 12
    assert list((repo / "results/demo").glob("sweep-*/summary.csv"))
    assert list((repo / "results/dense").glob("*/lag_performance.csv"))
    assert list((repo / "results/word-length").glob("*/lag_performance.csv"))
