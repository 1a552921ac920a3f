"""python -m train.app in a real browser: the command in a child process on a free local port,
Debian's headless Chromium driven by Selenium uploads photos the way a person does and reads what
the page shows. Skipped, with the reason, where Chromium, its driver, Selenium or Gradio is not
installed (.ci/run installs them)."""
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np
import pytest
from PIL import Image

from helpers import REPO
from test_app import photo, training_checkpoint

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1280,1600"]
START_TIMEOUT_S = 120  # importing gradio and torch in a child process on a busy 2-core machine
WAIT_S = 60            # one translation of a tiny photo, with the page's round trips

pytestmark = pytest.mark.browser


def _missing():
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return f"{path} is not installed (apt-get install chromium chromium-driver)"
    for module in ("selenium", "gradio"):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed (pip install {module})"
    return None


if _missing():
    pytest.skip(_missing(), allow_module_level=True)

from selenium import webdriver  # noqa: E402  (only once we know it is there)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(url, proc, log):
    deadline = time.time() + START_TIMEOUT_S
    while time.time() < deadline:
        assert proc.poll() is None, f"the app exited with {proc.returncode}:\n{log.read_text()}"
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"the app did not start within {START_TIMEOUT_S} s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    folder = tmp_path_factory.mktemp("app")
    checkpoint = training_checkpoint(folder / "latest.pt")
    port, log = free_port(), folder / "app.log"
    env = dict(os.environ, GRADIO_TEMP_DIR=str(folder / "gradio"))
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "train.app", "--checkpoint", str(checkpoint), "--port",
                                 str(port), "--device", "cpu"], cwd=REPO, env=env, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_serving(url, proc, log)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def browser():
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def upload(driver, url, *paths):
    driver.get(url)
    field = WebDriverWait(driver, WAIT_S).until(
        lambda d: d.find_element(By.CSS_SELECTOR, "#photos input[type=file]"))
    field.send_keys("\n".join(str(p) for p in paths))


def gallery_images(driver, count):
    """The `count` translated images the page shows, once all are there: [(src, caption)]."""
    def shown(d):
        images = d.find_elements(By.CSS_SELECTOR, "#translations img")
        loaded = [i for i in images if d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", i)]
        return loaded if len(loaded) >= count else False
    WebDriverWait(driver, WAIT_S).until(shown)
    sources = []
    for img in driver.find_elements(By.CSS_SELECTOR, "#translations img"):
        if img.get_attribute("src") not in sources:
            sources.append(img.get_attribute("src"))
    return sources


def fetch_image(src):
    with urllib.request.urlopen(src, timeout=10) as response:
        return Image.open(io.BytesIO(response.read())).convert("RGB")


def test_an_uploaded_photo_comes_back_translated_at_its_size(app_url, browser, tmp_path):
    url, proc = app_url
    source = photo(tmp_path / "street.png", size=(45, 30))
    upload(browser, url, source)
    sources = gallery_images(browser, 3)
    assert len(sources) == 3  # the photo, then both directions of the training checkpoint
    original = np.asarray(Image.open(source).convert("RGB")).astype(int)
    shown, *outputs = [np.asarray(fetch_image(src)).astype(int) for src in sources]
    assert np.array_equal(shown, original)                         # the photo itself, as PNG
    for output in outputs:
        assert output.shape == original.shape                     # the photo's own size, 45x30
        assert np.abs(output - original).mean() > 1               # translated, not the photo itself
    assert not np.array_equal(outputs[0], outputs[1])           # two different generators
    page = browser.find_element(By.TAG_NAME, "body").text
    assert "latest.pt" in page and "adalin" in page and "123" in page  # checkpoint, architecture, step
    # nothing was fetched from anywhere but the app itself
    fetched = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    outside = [u for u in fetched if not u.startswith((url, "data:", "blob:"))]
    assert outside == [], outside
    assert proc.poll() is None


def test_a_bad_upload_is_a_message_on_the_page_and_the_server_goes_on(app_url, browser, tmp_path):
    url, proc = app_url
    (tmp_path / "notes.png").write_text("this is not an image")
    upload(browser, url, tmp_path / "notes.png")
    WebDriverWait(browser, WAIT_S).until(
        lambda d: "not an image" in d.find_element(By.ID, "messages").text)
    assert "notes.png" in browser.find_element(By.ID, "messages").text
    assert proc.poll() is None
    upload(browser, url, photo(tmp_path / "after.png", size=(20, 16)))  # and it still translates
    assert len(gallery_images(browser, 3)) == 3
