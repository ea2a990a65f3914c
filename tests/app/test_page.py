"""The web page at GET /: what is served, and the page itself in a real browser.

Browser tests drive Debian's chromium through chromium-driver (selenium; no browser download). They run
against the real app with a fake engine behind it (fast: every outcome the page must render, under a
strict Content-Security-Policy), and against the real service on the default model (slow; it takes the
README's screenshot, and writes it to docs/img/web-page.png when MENTAL_R1_UPDATE_SCREENSHOT=1, so a test run
leaves the checkout as it was). Without a browser they fail, saying how to install one;
scripts/test.sh installs it (apt-get install chromium chromium-driver) when it runs as root or with sudo.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from app.page import STATIC
from app.settings import Settings
from mental_r1.safety import DISCLAIMER

from .conftest import API_KEY, API_KEY_HASH, REPO, free_port
from .fake_service import ready_client, wait_ready
from .threaded_server import serving

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
SCREENSHOT = REPO / "docs" / "img" / "web-page.png"
CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; object-src 'none'; base-uri 'none'"


@pytest.fixture
def client(fake_app):
    with ready_client(fake_app(max_text_chars=60, api_key_hashes=API_KEY_HASH)) as c:
        yield c


def test_page_is_served_with_the_settings_it_needs(client, fake_app):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["cache-control"] == "no-store"
    assert 'data-key-required="true"' in r.text and 'data-max-chars="60"' in r.text
    assert DISCLAIMER.replace("'", "&#x27;") in r.text
    with ready_client(fake_app(api_key_hashes="")) as open_service:
        assert 'data-key-required="false"' in open_service.get("/").text


@pytest.mark.parametrize("path, content_type", [("/static/page.js", "text/javascript; charset=utf-8"),
                                                ("/static/page.css", "text/css; charset=utf-8"),
                                                ("/static/favicon.svg", "image/svg+xml")])
def test_assets_have_their_content_types(client, path, content_type):
    r = client.get(path)
    assert r.status_code == 200 and r.headers["content-type"] == content_type and r.content


@pytest.mark.parametrize("path", ["/static/index.html", "/static/..%2Fpage.py", "/static/nope.js", "/static/"])
def test_nothing_else_is_served_from_static(client, path):
    r = client.get(path)
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found"


def test_the_page_is_not_part_of_the_api_schema(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert "/" not in paths and not any(p.startswith("/static") for p in paths)


def test_page_works_offline_under_a_strict_csp_and_stores_nothing():
    page, js, css = ((STATIC / n).read_text() for n in ("index.html", "page.js", "page.css"))
    assert not re.search(r"https?://", page + js + css)  # nothing fetched from elsewhere (the SVG's xmlns is a name)
    assert not re.search(r"<script(?![^>]*\bsrc=)", page) and " style=" not in page  # no inline script or style
    assert not re.search(r"\son[a-z]+=", page)  # no inline event handlers
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(", js)
    assert not re.search(r"localStorage|sessionStorage|indexedDB|document\.cookie", js)
    # inputs carry no name, so a form submitted without the script cannot put the text in a URL
    assert not re.search(r"<(input|textarea|select)[^>]*\sname=", page)
    for field in re.findall(r'<(?:input|textarea)[^>]*\sid="([^"]+)"', page):
        assert f'for="{field}"' in page, f"#{field} has no label"


def test_an_attempt_in_progress_has_a_place_at_the_top_of_the_page():
    page, js = ((STATIC / n).read_text() for n in ("index.html", "page.js"))
    assert page.index('id="urgent"') < page.index('id="disclaimer"') < page.index('id="form"')
    assert "safety.urgent" in js


# ---------------------------------------------------------------------------------------------- in a browser

@pytest.fixture(scope="module")
def browser():
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(f"no browser for the web page's tests ({', '.join(missing)} missing): install Debian's "
                    "chromium and chromium-driver (`apt-get install chromium chromium-driver` as root), or run "
                    "`bash scripts/test.sh` as root or with passwordless sudo, which installs them", pytrace=False)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--lang=en-US",
                "--window-size=1200,1000", "--no-first-run", "--disable-extensions"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


class Page:
    """The page as a user sees it."""

    def __init__(self, driver, url: str):
        from selenium.webdriver.support.ui import WebDriverWait

        self.d, self.wait = driver, lambda s=30: WebDriverWait(driver, s)
        driver.get(url)
        self.wait().until(lambda d: d.find_elements("css selector", "#tasks input[type=checkbox]"))

    def find(self, css: str):
        return self.d.find_element("css selector", css)

    def all(self, css: str):
        return self.d.find_elements("css selector", css)

    def fill(self, css: str, text: str) -> None:
        el = self.find(css)
        el.clear()
        if len(text) <= 200:
            el.send_keys(text)  # typed, key by key
        else:
            self.d.execute_script("arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input'))",
                                  el, text)

    def assess(self, timeout: float = 30) -> str:
        """Press Assess (from the keyboard) and wait for the result or an error; returns which."""
        from selenium.webdriver.common.keys import Keys

        self.find("#submit").send_keys(Keys.ENTER)
        self.wait(timeout).until(lambda d: self.find("#submit").is_enabled() and self.find("#submit").text == "Assess")
        return "error" if self.find("#error").is_displayed() else "result"

    def error(self) -> str:
        return self.find("#error").text


# what the fake model reasons: the reaction stage skipped, so the page shows a missing stage and a format issue
NO_REACTION = ("They describe weeks of poor sleep.</stimulus>\n<primary_appraisal>It weighs on them."
               "</primary_appraisal>\n<secondary_appraisal>They see few ways to cope.</secondary_appraisal>\n"
               "<mental_state>")


@pytest.fixture
def fake_page(browser, fake_app, fake_engine):
    """The page served by the real app (fake engine) with a strict CSP and nosniff, as a hardened deployment."""
    fake_engine.reasoning = NO_REACTION
    settings = {"port": free_port(), "max_text_chars": 300, "request_timeout_s": 1.0, "api_key_hashes": API_KEY_HASH}
    app = fake_app(**settings)

    @app.middleware("http")
    async def security_headers(request, call_next):
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    with serving(app, Settings(**settings)):
        wait_ready(app)
        browser.get_log("browser")  # drop earlier messages
        yield app, Page(browser, f"http://127.0.0.1:{settings['port']}/")


def test_page_renders_every_outcome(fake_page, fake_engine, browser):
    app, page = fake_page
    assert page.find("#key-field").is_displayed() and page.find("#disclaimer").is_displayed()
    assert len(page.all("#tasks input")) == 14 and page.find("#tasks input[value=DR]").is_selected()
    assert page.find("#locale").get_attribute("value") == "en-US"
    page.wait().until(lambda d: "Model fake" in page.find("#status").text)

    page.fill("#text", "  ")
    assert page.assess() == "error" and "Enter a text" in page.error()
    page.fill("#text", "A calm and ordinary day.")
    assert page.assess() == "error" and "needs an API key" in page.error()
    assert browser.switch_to.active_element == page.find("#key")
    page.fill("#key", "wrong")
    assert page.assess() == "error" and "was not accepted" in page.error()

    page.fill("#key", API_KEY)
    page.find("#tasks input[value=t-sid]").click()
    assert page.assess() == "result"
    results = page.find("#results")
    assert browser.switch_to.active_element == results  # focus moves to the result
    assert [h.text for h in results.find_elements("css selector", "article h3")] == [
        "DR Does the poster suffer from depression?", "t-sid What mental disorder does this post show?"]
    first = results.find_elements("css selector", "article")[0]
    assert [h.text for h in first.find_elements("css selector", ".stage h5")] == [
        "Stimulus", "Primary appraisal", "Secondary appraisal", "Reaction", "Mental state"]
    assert "Missing: the model did not write this stage." in first.text
    assert "Confidence: 60.0%" in first.text and "(chosen)" in first.text  # not colour alone
    label = first.find_element("css selector", ".label-sentence").text  # DR's label set holds both labels
    assert re.search(r"\((yes|no)\) uncertain between \1 and (yes|no)$", label), label
    second = results.find_elements("css selector", "article")[1]
    assert not second.find_elements("css selector", ".uncertain")  # t-sid: the label alone
    assert len(first.find_elements("css selector", "meter")) == 2 and "departed from the expected format" in first.text
    assert not results.find_elements("css selector", ".crisis")
    assert page.find("#disclaimer").is_displayed() and "not a diagnosis" in results.text

    page.fill("#text", "I want to kill myself tonight.")
    assert page.assess() == "result"
    first_block = page.find("#results > *")
    assert "crisis" in first_block.get_attribute("class") and "988" in first_block.text  # first, per locale
    assert not page.find("#urgent").is_displayed()

    page.fill("#text", "I took 40 of my sleeping pills an hour ago.")  # an attempt in progress
    assert page.assess() == "result"
    urgent = page.find("#urgent")
    assert urgent.is_displayed() and browser.switch_to.active_element == urgent  # read first
    assert urgent.location["y"] < page.find("#form").location["y"]  # at the top of the page, above the form
    assert "Emergency" in urgent.text and "911" in urgent.find_element("css selector", "li").text  # number first
    assert not page.find("#results").find_elements("css selector", ".crisis")  # shown once

    page.fill("#text", "x" * 301)
    assert page.assess() == "error" and "the limit is 300" in page.error()
    fake_engine.delay = 3  # each engine request; the service allows 1 s
    page.fill("#text", "a slow one")
    assert page.assess() == "error" and "took longer than the service allows" in page.error()
    fake_engine.delay = 0
    app.state.ready = False
    page.fill("#text", "Another day.")
    assert page.assess() == "error" and "not ready (the model is not ready yet). Try again in 5 seconds" in page.error()
    app.state.ready = True

    assert "{" not in page.error()  # never raw JSON
    assert browser.execute_script("return localStorage.length + sessionStorage.length") == 0
    assert browser.execute_script("return document.cookie") == ""
    problems = [e for e in browser.get_log("browser") if e["level"] == "SEVERE" and "/assess" not in e["message"]]
    assert not problems, problems  # no CSP violation, no script error (failed /assess calls are expected)


@pytest.mark.slow
def test_page_on_the_real_service_and_the_readme_screenshot(browser, server, tmp_path):
    page = Page(browser, server.url + "/")
    page.wait(60).until(lambda d: "ready" in page.find("#status").text)
    page.fill("#key", API_KEY)
    page.fill("#text", "I haven't slept properly in weeks. Work keeps piling up, I snap at everyone, and "
                       "the things I used to enjoy feel pointless now.")
    page.find("#tasks input[value=dreaddit]").click()
    assert page.assess(timeout=300) == "result", page.error()
    articles = page.all("#results article")
    assert len(articles) == 2
    for article in articles:
        titles = [h.text for h in article.find_elements("css selector", ".stage h5")]
        assert titles == ["Stimulus", "Primary appraisal", "Secondary appraisal", "Reaction", "Mental state"]
        assert "Label:" in article.text and "Confidence:" in article.text
        assert len(article.find_elements("css selector", "meter")) == 2
    assert page.find("#disclaimer").is_displayed() and "not a diagnosis" in page.find("#results").text

    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1200, min(height + 40, 4000))
    browser.execute_script("document.activeElement.blur(); window.scrollTo(0, 0)")  # the whole page, from the top
    shot = SCREENSHOT if os.environ.get("MENTAL_R1_UPDATE_SCREENSHOT") == "1" else tmp_path / SCREENSHOT.name
    shot.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 20_000  # a rendered page, not blank
    browser.set_window_size(1200, 1000)
