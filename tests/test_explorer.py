"""The interactive latent map in report.html, in a real headless Chromium: decoded pixels against PyTorch's
decode, class probabilities against predict_proba, and a screenshot.

The browser comes from Debian's `chromium` and `chromium-driver` packages; when they are missing the
fixture installs them with apt-get (as root, as CI runs), and Selenium drives them.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from vaegmm.artefacts import load_gmm_for, load_model_for
from vaegmm.cli import main
from vaegmm.model import decode_latents

pytestmark = pytest.mark.slow
CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
SCREENSHOT = Path(os.environ.get("VAEGMM_SCREENSHOT", "")) if os.environ.get("VAEGMM_SCREENSHOT") else None


def _install_browser() -> None:
    if Path(CHROMIUM).exists() and Path(DRIVER).exists():
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("Chromium is not installed and cannot be (needs root and apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            why = f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()[-300:]}"
            if os.environ.get("CI"):  # CI must test the page, so a failed install fails there
                pytest.fail(why)
            pytest.skip(why)  # e.g. a machine with no package mirror


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    _install_browser()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1200,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=DRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def report(small_course_files, tmp_path_factory):
    out = tmp_path_factory.mktemp("explore")
    assert main(["train", "--train", str(small_course_files["train"]), "--val", str(small_course_files["val"]),
                 "--test", str(small_course_files["test"]), "--out-dir", str(out), "--epochs", "4", "--min-steps", "0", "--no-progress",
                 "--device", "cpu"]) == 0
    assert main(["report", str(out), "--no-progress"]) == 0
    return out


def _map(browser):
    """The map canvas, scrolled to the middle of the window: pointer offsets count from its visible centre."""
    from selenium.webdriver.common.by import By

    canvas = browser.find_element(By.ID, "latent-map")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)
    return canvas


def test_the_page_decodes_like_pytorch_and_classifies_like_the_gmm(browser, report):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    page = report / "report.html"
    assert page.stat().st_size < 5_000_000
    html = page.read_text()
    assert "http://" not in html.split('<script id="explorer-data"')[1] and "fetch(" not in html
    browser.get(page.as_uri())
    canvas = _map(browser)
    model = load_model_for(report / "vae.pth", device="cpu")
    gmm = load_gmm_for(report / "gmm_params.pkl", model, report / "vae.pth")
    width, height = canvas.size["width"], canvas.size["height"]
    checked, planes = [], []
    for fx, fy in ((0.5, 0.5), (0.25, 0.3), (0.8, 0.7), (0.1, 0.9)):
        ActionChains(browser).move_to_element_with_offset(canvas, int((fx - 0.5) * width), int((fy - 0.5) * height)).perform()
        last = browser.execute_script("return window.vaegmmExplorer.state.last")
        z = np.array(last["z"])[None]
        expected = decode_latents(model, z).reshape(-1)
        diff = np.abs(np.array(last["pixels"]) - expected).max()
        assert diff <= 1 / 255, diff
        np.testing.assert_allclose(last["proba"], gmm.predict_proba(z)[0], atol=1e-6)
        checked.append(float(diff))
        planes.append(tuple(last["plane"]))
    assert len(set(planes)) == 4  # the pointer reached four different latent points
    ms = browser.execute_script("return window.vaegmmExplorer.timeDecode(200)")
    print(json.dumps({"max_pixel_difference": max(checked), "decode_ms": ms, "report_bytes": page.stat().st_size}))
    shown = browser.find_element(By.ID, "probabilities").text
    assert "class 1:" in shown and "%" in shown
    if SCREENSHOT:
        browser.find_element(By.ID, "explorer").screenshot(str(SCREENSHOT))


def test_clicking_a_training_point_shows_its_image_and_path_mode_draws_a_path(browser, report):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    browser.get((report / "report.html").as_uri())
    canvas = _map(browser)
    px = browser.execute_script("const e = window.vaegmmExplorer; return e.toPx(JSON.parse("
                                "document.getElementById('explorer-data').textContent).clickable.xy[0]);")
    w, h = canvas.size["width"], canvas.size["height"]
    ActionChains(browser).move_to_element_with_offset(canvas, int(px[0] - w / 2), int(px[1] - h / 2)).click().perform()
    assert "reconstruction" in browser.find_element(By.ID, "clicked").text
    browser.find_element(By.ID, "path-mode").click()
    for offset in ((-100, -100), (100, 100)):
        ActionChains(browser).move_to_element_with_offset(canvas, *offset).click().perform()
    assert browser.find_element(By.ID, "path-strip").is_displayed()


@pytest.fixture(scope="module")
def wide_report(small_course_files, tmp_path_factory):
    """A run on 12x20 images (wider than tall), as a practitioner's own image set might be."""
    out = tmp_path_factory.mktemp("wide")
    for name in ("train", "val"):
        with np.load(small_course_files[name]) as f:
            np.savez(out / f"{name}.npz", data=f["data"][:, 8:20, 4:24], labels=f["labels"])
    assert main(["train", "--train", str(out / "train.npz"), "--val", str(out / "val.npz"), "--out-dir", str(out),
                 "--epochs", "2", "--min-steps", "0", "--hidden", "64", "--no-progress", "--device", "cpu"]) == 0
    assert main(["report", str(out), "--no-progress"]) == 0
    return out


def test_images_that_are_not_square_keep_their_aspect_in_the_page(browser, wide_report):
    from selenium.webdriver.common.action_chains import ActionChains

    from vaegmm.explorer import PATH_STEPS

    browser.get((wide_report / "report.html").as_uri())
    canvas = _map(browser)
    ActionChains(browser).move_to_element_with_offset(canvas, 10, -20).perform()
    last = browser.execute_script("return window.vaegmmExplorer.state.last")
    model = load_model_for(wide_report / "vae.pth", device="cpu")
    assert np.abs(np.array(last["pixels"]) - decode_latents(model, np.array(last["z"])[None]).reshape(-1)).max() <= 1 / 255
    decoded = browser.execute_script("const c = document.getElementById('decoded'); return [c.width, c.height]")
    assert decoded == [int(decoded[1] * 20 / 12), decoded[1]]  # 20 wide, 12 tall
    browser.find_element("id", "path-mode").click()
    for offset in ((-100, -100), (100, 100)):
        ActionChains(browser).move_to_element_with_offset(canvas, *offset).click().perform()
    strip = browser.execute_script("const c = document.getElementById('path-strip'); return [c.width, c.height]")
    assert strip[0] == int(PATH_STEPS * strip[1] * 20 / 12)
