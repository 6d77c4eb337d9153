"""The built documentation, loaded in headless Chromium: the gallery figures are there and rendered.

Uses the site in $AEKIT_DOCS_SITE when set (CI builds it once with `mkdocs build --strict`), else
builds one. Skips where Chromium or MkDocs is not installed.
"""

import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from functools import partial
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(path.stem for path in (ROOT / "examples").glob("[0-9][0-9]_*.py"))
CHECK_PAGE = "/__aekit_check__.html"

# Loads a page of the site in a same-origin frame, waits for its images, and writes what it found
# into its own DOM, which `chromium --dump-dom` prints.
HARNESS = """<!doctype html><html><body><iframe id="page" src="{target}" width="1200" height="900"></iframe>
<script>
const frame = document.getElementById("page");
frame.addEventListener("load", async () => {{
  const images = Array.from(frame.contentDocument.querySelectorAll("img"));
  await Promise.all(images.map(img => img.complete ? null : new Promise(done => {{
    img.addEventListener("load", done); img.addEventListener("error", done); }})));
  const found = images.map(img => ({{
    src: img.getAttribute("src"), width: img.naturalWidth, height: img.naturalHeight}}));
  const out = document.createElement("pre");
  out.id = "result";
  out.textContent = JSON.stringify(found);
  document.body.appendChild(out);
}});
</script></body></html>"""


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "chromium-headless-shell", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    if chromium() is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium)")
    given = os.environ.get("AEKIT_DOCS_SITE")
    if given:
        return Path(given)
    pytest.importorskip("mkdocs", reason="MkDocs is not installed (pip install -e '.[docs]')")
    pytest.importorskip("material", reason="mkdocs-material is not installed (pip install -e '.[docs]')")
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert build.returncode == 0, build.stderr[-3000:]
    return out


class _Handler(http.server.SimpleHTTPRequestHandler):
    target = "/"

    def do_GET(self):
        if self.path.startswith(CHECK_PAGE):
            body = HARNESS.format(target=self.target).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            super().do_GET()

    def log_message(self, *args):
        pass


def images_on(site: Path, page: str) -> list[dict]:
    """The <img> elements of ``page`` as Chromium rendered them: src, naturalWidth, naturalHeight."""
    handler = type("Handler", (_Handler,), {"target": page})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}{CHECK_PAGE}"
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]
        run = subprocess.run(
            [chromium(), *flags, "--virtual-time-budget=15000", "--dump-dom", url],
            capture_output=True,
            text=True,
            timeout=90,
        )
    finally:
        server.shutdown()
        server.server_close()
    match = re.search(r'<pre id="result">(.*?)</pre>', run.stdout, flags=re.S)
    assert match, f"the page did not report its images; chromium said: {run.stderr[-2000:]}"
    return json.loads(match.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def test_gallery_index_shows_every_figure(site):
    images = images_on(site, "/gallery/")
    figures = {Path(img["src"]).stem: img for img in images if img["src"].endswith(".png")}
    assert sorted(figures) == EXAMPLES
    broken = [name for name, img in figures.items() if img["width"] == 0 or img["height"] == 0]
    assert not broken, f"figures not rendered: {broken}"


def test_a_gallery_page_renders_its_figure(site):
    name = EXAMPLES[0]
    images = images_on(site, f"/gallery/{name}/")
    figure = [img for img in images if img["src"].endswith(f"{name}.png")]
    assert figure and figure[0]["width"] > 400, images
