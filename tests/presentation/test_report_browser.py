"""report.html in a real browser (headless Chromium): every image loads, no console error, the page has
the result, a table of contents and collapsible appendices.

Skipped only when no Chromium is installed (.ci/run installs Debian's ``chromium``). The page is a copy of
report.html with a tiny script appended that, after ``load``, writes into the DOM how many images loaded;
``--dump-dom`` prints that DOM, ``--enable-logging=stderr`` the console messages.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
CHROMIUM = next((p for n in BROWSERS if (p := shutil.which(n))), None)
pytestmark = [pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (apt-get install chromium)"),
              pytest.mark.slow]  # a real browser: two Chromium starts plus a whole report build

PROBE = """<script>
window.addEventListener("load", () => {
  const imgs = Array.from(document.images);
  const bad = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute("src"));
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = "PROBE images=" + imgs.length + " broken=" + JSON.stringify(bad) +
    " details=" + document.querySelectorAll("details").length +
    " toc=" + document.querySelectorAll("a[href^='#']").length;
  document.body.appendChild(out);
});
</script>
"""

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--allow-file-access-from-files", "--virtual-time-budget=10000"]


def chromium(page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *extra, page.as_uri()],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def report(built_reports, tmp_path_factory) -> Path:
    """A copy of the blinded full report (conftest ``built_reports``): the probe page is written beside it."""
    root = tmp_path_factory.mktemp("browser") / "report"
    shutil.copytree(built_reports["blind"], root)
    return root


def test_report_renders_in_chromium_with_every_image_and_no_console_error(report, tmp_path):
    html = (report / "report.html").read_text()
    page = report / "report_probe.html"  # beside report.html: the same relative image paths
    page.write_text(html.replace("</body>", PROBE + "</body>"))
    run = chromium(page, tmp_path / "profile", "--dump-dom", "--enable-logging=stderr", "--v=0")
    probe = re.search(r"PROBE images=(\d+) broken=(\[.*?\]) details=(\d+) toc=(\d+)", run.stdout)
    assert probe, f"page did not load: {run.stderr[-2000:]}"
    n_img, broken, n_details, n_links = int(probe[1]), probe[2], int(probe[3]), int(probe[4])
    assert n_img == len(re.findall(r"<img ", html)) > 5
    assert broken == "[]"
    assert n_details >= 1 and n_links >= 10  # collapsible appendices, table of contents
    console = [ln for ln in run.stderr.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
    assert not [ln for ln in console if "ERROR" in ln.upper() or "Uncaught" in ln], console
    assert "Not allowed to load local resource" not in run.stderr


def test_report_first_screen_shows_the_result(report, tmp_path):
    shot = tmp_path / "first_screen.png"
    chromium(report / "report.html", tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,1400",
             "--hide-scrollbars")
    assert shot.exists() and shot.stat().st_size > 10_000
    md = (report / "report.md").read_text()
    first = md[: md.index("**Contents**")]
    assert "eps_limits.png" in first
    assert "| run | EOT | signal efficiency | background n_b | observed |" in first
