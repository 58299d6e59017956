"""Take the README's screenshot of the dashboard: `.venv/bin/python scripts/screenshot.py`.

Loads demo data into a temporary folder, starts `footfall serve`, logs in with the
operator's one-time link in Debian's Chromium and saves docs/screenshot.png: the
Properties tab of docker-locust, its launch event's `users`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]  # fmt: skip


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "data"
        footfall = [sys.executable, "-m", "footfall.cli"]
        subprocess.run([*footfall, "demo", "--data", str(data), "--scale", "0.3"], check=True, capture_output=True)
        server = subprocess.Popen([*footfall, "serve", "--data", str(data), "--port", "0"], stdout=subprocess.DEVNULL)
        try:
            while not (data / "server.json").exists():
                time.sleep(0.1)
            url = json.loads((data / "server.json").read_text())["url"]
            for _ in range(100):
                try:
                    urllib.request.urlopen(url + "/healthz").close()
                    break
                except OSError:
                    time.sleep(0.1)
            link = subprocess.run(
                [*footfall, "admin", "login-link", "--data", str(data)], check=True, capture_output=True, text=True
            ).stdout.split()[-1]  # a one-time link, as an operator gets it
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
                page = browser.new_page(viewport={"width": 1280, "height": 1000})
                page.goto(link)
                # The Properties tab: a tool's own property as values, quantiles and a histogram.
                page.goto(f"{url}/apps/docker-locust?days=90&tab=properties&event=launch&property=users")
                page.screenshot(path=str(ROOT / "docs" / "screenshot.png"), full_page=False)
                browser.close()
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
