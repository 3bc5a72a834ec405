"""The quick suite (configs/suites/quick.yml) from empty store and results roots: wall time,
peak RSS, the leaderboard, the comparisons at the chosen lag, and a screenshot of its report
at 1,280 px in headless Chromium (benchmarks/benchmark-report.png, the README's picture).

    python benchmarks/quick_suite.py                # makes the demo stand-in if it is absent
    python benchmarks/quick_suite.py --no-screenshot

Needs chromium, chromedriver and selenium for the screenshot (apt-get install -y chromium
chromium-driver; pip install -e '.[dev]').
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))


from podbench.train.memory import PeakRss  # noqa: E402
from podbench.train.results import cpu_model  # noqa: E402

SUITE = REPO / "configs" / "suites" / "quick.yml"
DEMO = REPO / "data" / "podcast-standin-demo"


def screenshot(index: Path, out: Path) -> None:
    """The report's first screen at 1,280 px wide."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--window-size=1280,1400",
        "--hide-scrollbars",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    try:
        driver.get(index.resolve().as_uri())
        fits = driver.execute_script(
            "return document.documentElement.scrollWidth <= window.innerWidth"
        )
        driver.save_screenshot(str(out))
    finally:
        driver.quit()
    print(f"screenshot: {out} (leaderboard fits 1,280 px without scrolling: {fits})")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-screenshot", action="store_true")
    parser.add_argument("--out", type=Path, default=HERE / "benchmark-report.png")
    args = parser.parse_args(argv)
    from podbench.data.synth import GROUND_TRUTH, synthesize
    from podbench.experiments.benchmark import benchmark
    from podbench.experiments.demo import DEMO_DURATION

    if not (DEMO / GROUND_TRUTH).is_file():
        synthesize(DEMO, duration=DEMO_DURATION)  # the stand-in `podbench demo` makes

    print(f"machine: {cpu_model()}, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as work:
        rss = PeakRss(every_s=0.2).start()
        t0 = time.perf_counter()
        result = benchmark(
            SUITE,
            [f"output.stores={work}/stores", f"output.results={work}/results"],
            log=lambda line: None,
        )
        wall = time.perf_counter() - t0
        rss.stop()
        print(
            f"quick suite: {wall:.1f} s wall from empty roots, peak RSS {rss.peak / 2**30:.2f} GB"
        )
        print(
            result.leaderboard[
                ["cell", "lag_ms", "test_mean", "test_std", "n_significant", "best_in_task"]
            ].to_string(index=False)
        )
        pairs = pd.read_csv(result.folder / "comparisons.csv")
        print(
            pairs[
                [
                    "cell_a",
                    "cell_b",
                    "lag_ms",
                    "a_mean",
                    "b_mean",
                    "difference",
                    "ci_low",
                    "ci_high",
                    "p_value",
                ]
            ].to_string(index=False)
        )
        if not args.no_screenshot:
            screenshot(result.report, args.out)


if __name__ == "__main__":
    main()
