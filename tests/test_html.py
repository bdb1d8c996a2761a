"""`archcalc html`: the page on its own (no network, deterministic) and in a real headless browser.

The browser is Debian's chromium with chromium-driver, driven by selenium (`.ci/run` installs them);
the browser tests are skipped, saying why, only where they cannot be had. With
ARCHCALC_SCREENSHOT=FILE the resnet50 test also saves its screenshot there (the picture in docs/diagrams.md:
reports/html/screenshots/resnet50.png).
"""
from __future__ import annotations

import json
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner
from hostile_text import BLOCK_SHOWN, HOSTILE, NAME, TITLE_SHOWN, controls

from archcalc import analyze, load
from archcalc.cli import main
from archcalc.report.html import page, workings
from archcalc.report.pages import compare, generate

FIXTURES = Path(__file__).parent / "fixtures"


def cli_totals(name: str) -> dict[str, int]:
    result = CliRunner().invoke(main, ["table", name, "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["totals"]


# ---- the page as text ------------------------------------------------------------------------------

def test_page_needs_no_network_and_is_deterministic():
    text = page(analyze(load("googlenet")), 2, 3)
    assert text == page(analyze(load("googlenet")), 2, 3)
    assert "<script src" not in text and "<link rel=\"stylesheet\"" not in text and "@import" not in text
    assert "@font-face" not in text and "url(http" not in text
    assert set(re.findall(r"https?://[^\s\"'<>)]+", text)) == {"http://www.w3.org/2000/svg"}  # the SVG namespace only


def test_page_totals_are_the_cli_json_totals():
    text = page(analyze(load("resnet50")))
    shown = {key: int(value.replace(",", "")) for key, value in re.findall(r'data-total="(\w+)">([\d,]+)<', text)}
    expected = cli_totals("resnet50")
    assert shown == {key: expected[key] for key in shown} and len(shown) == 9
    assert shown["params"] == 25_557_032  # torchvision's published num_params


def test_group_and_merge_workings_by_hand():
    found = workings(analyze(load("googlenet")))
    assert found["inception3a.cat"][0] == "concat channels: C = 64 + 128 + 32 + 32 = 256, 256x28x28"
    assert found["inception3a.cat"][1] == f"a new tensor of {256 * 28 * 28:,} values"
    assert found["inception3a.branch2"][0] == "sequence: 6 layers, 192x28x28 -> 128x28x28"  # 1x1 96, 3x3 128
    se = workings(analyze(load(str(FIXTURES / "diagram_se.json"))))
    assert se["se"][0] == "multiply, broadcast: 64x8x8 × 64x1x1 -> 64x8x8"
    residual = workings(analyze(load(str(FIXTURES / "diagram_residual.json"))))
    assert residual["block1.residual"][0] == "add: 32x8x8 + 32x8x8 -> 32x8x8, elementwise"
    # the second conv of block0 receives the field of conv1 (3) and the jump of its stride (2): 3 + 2*2 = 7
    assert residual["block0.conv2"][-1] == "RF H, W: 3 + (3 - 1)×2 = 7, jump 2×1 = 2"


def test_cli_writes_the_page(tmp_path):
    result = CliRunner().invoke(main, ["html", "lenet5", "-o", str(tmp_path / "lenet5.html"), "--depth", "1"])
    assert result.exit_code == 0, result.output
    assert 'data-initial-depth="1"' in (tmp_path / "lenet5.html").read_text(encoding="utf-8")
    result = CliRunner().invoke(main, ["html", "lenet6", "-o", str(tmp_path / "x.html")])
    assert result.exit_code == 2 and not (tmp_path / "x.html").exists()


def test_cli_train_adds_the_training_columns_and_totals(tmp_path):
    plain, trained = tmp_path / "plain.html", tmp_path / "trained.html"
    assert CliRunner().invoke(main, ["html", "lenet5", "-o", str(plain)]).exit_code == 0
    assert CliRunner().invoke(main, ["html", "lenet5", "-o", str(trained), "--train"]).exit_code == 0
    backward = 2 * 416_520 - 6 * 28 * 28 * 25  # LeNet-5: twice its MACs, less the first conv's input gradient
    assert "Backward MACs" not in plain.read_text(encoding="utf-8")
    assert "Backward MACs" in trained.read_text(encoding="utf-8") and f"{backward:,}" in trained.read_text(encoding="utf-8")


def test_report_writes_pages_and_keeps_recorded_screenshots(tmp_path):
    out = tmp_path / "reports"
    generate(out, "lenet5")
    assert (out / "html" / "lenet5.html").exists() and (out / "diagrams" / "lenet5.svg").exists()
    shot = out / "html" / "screenshots" / "resnet50.png"
    shot.parent.mkdir()
    shot.write_bytes(b"\x89PNG")
    fresh = tmp_path / "fresh"
    generate(fresh, "lenet5", label=out)  # as `report --check` regenerates it
    assert compare(out, fresh) == []  # a recorded screenshot is neither stale nor pruned
    (out / "html" / "lenet5.html").write_text("edited", encoding="utf-8")
    assert compare(out, fresh) == ["html/lenet5.html (differs)"]


# ---- in a browser ---------------------------------------------------------------------------------

def _browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install selenium; .ci/run installs it)")
    binary = next((b for b in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if b), None)
    driver_path = shutil.which("chromedriver")
    if not binary or not driver_path:
        pytest.skip("chromium and chromium-driver are not installed (apt-get install chromium chromium-driver; .ci/run does)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000",
                 "--hide-scrollbars", "--force-device-scale-factor=1"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver_path), options=options)


@pytest.fixture(scope="module")
def browser():
    driver = _browser()
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def resnet50_page(tmp_path_factory):
    path = tmp_path_factory.mktemp("html") / "resnet50.html"
    result = CliRunner().invoke(main, ["html", "resnet50", "-o", str(path), "--depth", "2"])
    assert result.exit_code == 0, result.output
    return path


def _visible(driver) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#layers tbody tr')).filter(r => r.offsetParent !== null)"
        ".map(r => r.dataset.path);")


def _errors(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def test_page_in_a_browser(browser, resnet50_page):
    from selenium.webdriver.common.by import By

    browser.get(resnet50_page.as_uri())
    assert browser.title.startswith("resnet50: ResNet-50")

    # folded to depth 2 at first: the stages show their blocks, not the blocks' layers
    shown = _visible(browser)
    assert "layer1.0" in shown and "layer1.0.conv1" not in shown
    # the input, 4 stem layers, 4 stages, 16 blocks of 11 rows (the block's own, then as torchvision runs it:
    # conv1 bn1 relu conv2 bn2 relu conv3 bn3 add relu), 4 downsample groups of 2 layers, avgpool, flatten, fc:
    # 1 + 4 + 4 + 16 * 11 + 4 * 3 + 3 = 200
    assert browser.find_element(By.ID, "shown").text == f"{len(shown)} of 200 rows shown"

    # unfolding a block adds its rows; folding a stage hides them all
    browser.find_element(By.CSS_SELECTOR, 'tr[data-path="layer1.0"] button.toggle').click()
    opened = _visible(browser)
    assert "layer1.0.conv1" in opened and len(opened) > len(shown)
    browser.find_element(By.CSS_SELECTOR, 'tr[data-path="layer1"] button.toggle').click()
    assert not any(p.startswith("layer1.") for p in _visible(browser))
    browser.find_element(By.CSS_SELECTOR, '#controls button[data-depth="all"]').click()
    assert len(_visible(browser)) == 200

    # the working of a clicked layer, against the hand calculation of ResNet's stem
    browser.find_element(By.CSS_SELECTOR, 'tr[data-path="conv1"] td:nth-child(2)').click()
    lines = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#working-lines li")]
    assert browser.find_element(By.ID, "working-title").text == "conv1 (conv2d)"
    assert "H, W: (224 + 2×3 - 1×(7 - 1) - 1)/2 + 1 = 112.5 -> floor 112" in lines  # 223/2 + 1
    assert f"MACs = Cout×Hout×Wout×(Cin/g)×Kh×Kw = 64×112×112×3×7×7 = {64 * 112 * 112 * 3 * 49:,}" in lines

    # a box of the figure selects its layer too
    browser.find_element(By.CSS_SELECTOR, '#figure-svg g.box[data-path="maxpool"]').click()
    assert browser.find_element(By.ID, "working-title").text == "maxpool (max_pool2d)"
    assert "RF H, W: 7 + (3 - 1)×2 = 11, jump 2×2 = 4" in [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#working-lines li")]

    # sorting by parameters orders siblings, keeps each group's rows under it, and a third click restores the order
    header = browser.find_element(By.CSS_SELECTOR, 'th[data-column="params"]')
    header.click()
    header.click()  # descending
    order = browser.execute_script("return Array.from(document.querySelectorAll('#layers tbody tr')).map(r => r.dataset.path);")
    top = [p for p in order if "." not in p]
    assert top[0] == "layer4" and top[-1] in ("input", "relu", "maxpool", "avgpool", "flatten")  # 14,964,736 params
    assert order[order.index("layer4") + 1].startswith("layer4.")  # a group keeps its rows under it
    header.click()
    assert browser.execute_script("return document.querySelector('#layers tbody tr:nth-child(2)').dataset.path;") == "conv1"

    # the totals on the page are the CLI's
    totals = {e.get_attribute("data-total"): int(e.text.replace(",", ""))
              for e in browser.find_elements(By.CSS_SELECTOR, "[data-total]")}
    expected = cli_totals("resnet50")
    assert totals == {key: expected[key] for key in totals} and len(totals) == 9

    assert _errors(browser) == []

    screenshot = os.environ.get("ARCHCALC_SCREENSHOT")
    if screenshot:
        browser.find_element(By.CSS_SELECTOR, '#controls button[data-depth="2"]').click()
        browser.find_element(By.CSS_SELECTOR, '#figure-svg g.box[data-path="layer1.0.conv2"]').click()
        browser.execute_script("window.scrollTo(0, 0); document.getElementById('figure').scrollTop = 330;")
        Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(screenshot)


def test_every_zoo_family_page_loads_without_errors(browser, tmp_path):
    for name in ("vgg16", "googlenet", "densenet121", "efficientnet_b0", "convnext_tiny", "alexnet_paper"):
        path = tmp_path / f"{name}.html"
        analysis = analyze(load(name))
        path.write_text(page(analysis, 2, 3), encoding="utf-8")
        browser.get(path.as_uri())
        rows = browser.execute_script("return document.querySelectorAll('#layers tbody tr').length;")
        assert rows == len(analysis.rows), name
        assert _errors(browser) == [], name


class _Elements(HTMLParser):
    """The elements of a page as a browser's parser finds them, and the text of each heading."""

    def __init__(self):
        super().__init__()
        self.tags, self.text, self.open = [], {}, None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.open = tag

    def handle_endtag(self, tag):
        self.open = None

    def handle_data(self, data):
        if self.open:
            self.text[self.open] = self.text.get(self.open, "") + data


def test_page_of_a_hostile_spec_has_no_element_or_control_character_of_the_spec():
    text = page(analyze(load(str(HOSTILE))), 1)
    assert controls(text) == []
    elements = _Elements()
    elements.feed(text)
    assert elements.tags.count("script") == 2 and "img" not in elements.tags and "b" not in elements.tags
    assert elements.text["h1"] == f"{NAME}: {TITLE_SHOWN}"
    embedded = re.search(r'<script type="application/json" id="table-data">(.*?)</script>', text, re.S).group(1)
    assert "<" not in embedded  # neither `</script>` nor `<!--` from a name
    data = json.loads(embedded)
    stem = next(row for row in data["rows"] if row[0] == "stem")
    assert stem[1] == BLOCK_SHOWN  # the table shows it with textContent: as written, escaped


# ---- the explorer on a projector (1024x768) and a large screen; the keyboard --------------------------

SIZES = [(1024, 768), (1920, 1080)]


def test_page_totals_also_show_scaled_units():
    text = page(analyze(load("resnet50")))
    scaled = dict(re.findall(r'data-scaled="(\w+)">([^<]+)<', text))
    # torchvision: 25,557,032 params, 4,089,184,256 MACs (ResNet50_Weights.IMAGENET1K_V1.meta, _ops 4.09 G)
    assert scaled["params"] == "25.56 M" and scaled["macs_per_image"] == "4.09 G"


@pytest.fixture
def sized(browser):
    yield browser
    browser.set_window_size(1400, 1000)


def _box(driver, css: str) -> dict:
    return driver.execute_script("var r = document.querySelector(arguments[0]).getBoundingClientRect();"
                                 "return {top: r.top, bottom: r.bottom, left: r.left, right: r.right};", css)


@pytest.mark.parametrize("width, height", SIZES)
def test_a_click_in_the_figure_keeps_the_working_in_view(sized, resnet50_page, width, height):
    sized.set_window_size(width, height)
    sized.get(resnet50_page.as_uri())
    sized.find_element("css selector", '#controls button[data-depth="all"]').click()
    # the last box of the figure: its row is near the end of a table of 200 rows, thousands of px down
    sized.execute_script("document.getElementById('figure').scrollTop = 1e6;")
    boxes = sized.find_elements("css selector", "#figure-svg g.box")
    path = boxes[-1].get_attribute("data-path")
    boxes[-1].click()
    assert sized.find_element("id", "working-title").text.startswith(path + " (")
    inner = sized.execute_script("return window.innerHeight;")
    working = _box(sized, "#working")
    assert 0 <= working["top"] and working["bottom"] <= inner  # the working, on the screen
    row = _box(sized, f'tr[data-path="{path}"]')
    assert 0 <= row["top"] and row["bottom"] <= inner  # the row too, scrolled to in the table's own box
    assert sized.execute_script("return window.scrollY;") < 120  # at most the page's header scrolled away
    assert _box(sized, "#figure")["top"] >= 0


@pytest.mark.parametrize("name", ["resnet50", "inception_v3", "efficientnet_b0", "swin_t"])
def test_no_horizontal_scroll_at_1024_by_768(sized, tmp_path, name):
    path = tmp_path / f"{name}.html"
    analysis = analyze(load(name))
    path.write_text(page(analysis, None, 3), encoding="utf-8")
    sized.set_window_size(1024, 768)
    sized.get(path.as_uri())
    assert sized.execute_script("return document.documentElement.scrollWidth <= document.documentElement.clientWidth;")
    wrap = sized.execute_script("var w = document.getElementById('table-wrap'); return [w.scrollWidth, w.clientWidth];")
    assert wrap[0] <= wrap[1], name  # the table needs no scrollbar of its own either
    inner = sized.execute_script("return document.documentElement.clientWidth;")
    for column in ("macs", "activations", "rf_size"):
        header = _box(sized, f'th[data-column="{column}"]')
        assert 0 <= header["left"] and header["right"] <= inner, (name, column)


def test_rows_are_reached_and_folded_with_the_keyboard(sized, resnet50_page):
    from selenium.webdriver.common.keys import Keys

    sized.set_window_size(1024, 768)
    sized.get(resnet50_page.as_uri())
    focusable = sized.execute_script("return Array.from(document.querySelectorAll('#layers [tabindex=\"0\"]'))"
                                     ".map(e => e.dataset.path);")
    assert focusable == ["input"]  # one stop in the tab order: the arrow keys move within the table

    def active() -> str:
        return sized.execute_script("return document.activeElement.dataset.path || '';")

    def press(*keys) -> None:
        sized.switch_to.active_element.send_keys(*keys)

    sized.execute_script("document.querySelector('#layers tbody tr').focus();")
    press(Keys.ARROW_DOWN)
    assert active() == "conv1"
    press(Keys.ENTER)
    assert sized.find_element("id", "working-title").text == "conv1 (conv2d)"
    for _ in range(4):  # bn1, relu, maxpool, layer1
        press(Keys.ARROW_DOWN)
    assert active() == "layer1"
    press(Keys.ARROW_DOWN)
    assert active() == "layer1.0"  # folded at depth 2: the blocks show, their layers do not
    press(Keys.ARROW_RIGHT)  # unfolds the block
    assert "layer1.0.conv1" in _visible(sized) and "layer1.0.downsample" in _visible(sized)
    assert "layer1.0.downsample.0" not in _visible(sized)  # a group at depth 3 starts folded
    assert sized.find_element("css selector", 'tr[data-path="layer1.0"]').get_attribute("aria-expanded") == "true"
    press(Keys.ARROW_RIGHT)  # open: moves to its first child
    assert active() == "layer1.0.conv1"
    press(Keys.ARROW_LEFT)  # a layer: Left goes to its parent
    assert active() == "layer1.0"
    press(Keys.ARROW_LEFT)  # the block is open: Left folds it
    assert "layer1.0.conv1" not in _visible(sized)
    press(Keys.SPACE)  # Space unfolds it again
    assert "layer1.0.conv1" in _visible(sized) and active() == "layer1.0"
    assert sized.execute_script("return window.scrollX;") == 0
    assert _errors(sized) == []


@pytest.mark.parametrize("name, what", [("lenet5_paper", "fixed values of `rbf`"), ("resnet18", "BN running statistics")])
def test_the_totals_name_what_the_non_trainable_values_are(name, what):
    """LeNet-5's (1998) only non-trainable values are its RBF units' hand-chosen centres; ResNet's are its BN
    layers' running mean and variance."""
    text = page(analyze(load(name)))
    assert f"Non-trainable values ({what})" in text
    assert ("BN running statistics" in text) == (what == "BN running statistics")
