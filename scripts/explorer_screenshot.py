"""Screenshot of a report's interactive latent map in headless Chromium, and the decode time it measures.

    .venv/bin/python scripts/explorer_screenshot.py runs/demo/report.html docs/explorer.png

Needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver) and selenium.
"""

import json
import sys
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By

page, out = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--window-size=1200,1000"):
    options.add_argument(flag)
driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path="/usr/bin/chromedriver"), options=options)
try:
    driver.get(page.as_uri())
    canvas = driver.find_element(By.ID, "latent-map")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)
    ActionChains(driver).move_to_element_with_offset(canvas, -60, 40).perform()
    timing = driver.execute_script("return window.vaegmmExplorer.timeDecode(500)")
    out.parent.mkdir(parents=True, exist_ok=True)
    driver.find_element(By.ID, "explorer").screenshot(str(out))
    print(json.dumps({"page": str(page), "bytes": page.stat().st_size, "decode_ms": timing, "screenshot": str(out)}))
finally:
    driver.quit()
