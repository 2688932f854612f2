"""The Gradio Space, launched on 127.0.0.1 with a tiny model and driven through gradio_client and a browser."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app(tiny_clip_dir):
    os.environ["S3_MODEL"] = str(tiny_clip_dir)
    os.environ["S3_MAX_LABELS"] = "100"
    spec = importlib.util.spec_from_file_location("space_app_main", ROOT / "space_app" / "app.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    port = free_port()
    module.demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    module.url = f"http://127.0.0.1:{port}/"
    yield module
    module.demo.close()


@pytest.fixture(scope="module")
def client(app):
    from gradio_client import Client

    return Client(app.url, verbose=False)


def classify(client, image, labels="cat, dog, airplane", space="", metric="local_center", synonyms=None, top_k=3):
    from gradio_client import handle_file

    table = {"headers": ["label", "synonyms (comma-separated)"], "data": synonyms or [["", ""]]}
    return client.predict(
        handle_file(str(image)) if image is not None else None,
        labels,
        space,
        metric,
        table,
        top_k,
        api_name="/classify",
    )


def labels_of(result) -> list[str]:
    return [c["label"] for c in result["confidences"]]


def test_every_input_path(client, photos, small_space, tmp_path):
    # a synonyms row for a label that is not a class ("zebra") is ignored
    s3, clip, details, plot = classify(client, photos[0], synonyms=[["cat", "kitty, house cat"], ["zebra", "x"]])
    assert set(labels_of(s3)) == set(labels_of(clip)) == {"cat", "dog", "airplane"}
    rows = details["data"]
    assert len(rows) == 3 and {r[0] for r in rows} == {"cat", "dog", "airplane"}
    cat = next(r for r in rows if r[0] == "cat")
    assert "kitty" in cat[4] or "kitty" in cat[5]  # the synonym shows up, kept or pruned, with its similarity
    assert plot is not None
    # every metric, top-k, a PNG and a greyscale image
    grey = tmp_path / "grey.png"
    Image.fromarray(np.full((40, 60), 100, dtype=np.uint8)).save(grey)
    for metric in ("label", "nearest_simplex", "local_center_knn"):
        s3, *_ = classify(client, grey, metric=metric, top_k=2)
        assert len(s3["confidences"]) == 2
    # a synonym-space artifact from a local folder
    folder = small_space.save_pretrained(tmp_path / "space")
    s3, clip, details, _ = classify(client, photos[1], labels="", space=str(folder))
    assert set(labels_of(s3)) == set(small_space.labels)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("no image", "No image"),
        ("no labels", "No classes"),
        ("500 labels", "too many"),
        ("unknown hub id", "not a local folder"),
        ("not an image", "not an image file"),
        ("bad metric", "Unknown metric"),
    ],
)
def test_bad_inputs_give_messages_and_the_app_keeps_serving(client, photos, tmp_path, kind, message):
    from gradio_client.exceptions import AppError

    image, labels, space, synonyms, metric = photos[0], "cat, dog", "", None, "local_center"
    if kind == "no image":
        image = None
    elif kind == "no labels":
        labels = " , "
    elif kind == "500 labels":
        labels = ", ".join(f"class {i}" for i in range(500))
    elif kind == "unknown hub id":
        labels, space = "", "someone/does-not-exist"
    elif kind == "not an image":
        image = tmp_path / "notes.png"
        image.write_text("hello")
    elif kind == "bad metric":
        metric = "cosine"
    with pytest.raises(AppError, match=message) as err:
        classify(client, image, labels=labels, space=space, synonyms=synonyms, metric=metric)
    assert "Traceback" not in str(err.value)
    s3, *_ = classify(client, photos[0])  # still serving
    assert labels_of(s3)


def test_huge_image_is_downscaled_and_classified(client, tmp_path):
    huge = tmp_path / "huge.png"
    Image.new("RGB", (6000, 5000), (30, 120, 200)).save(huge)
    s3, *_ = classify(client, huge)
    assert len(s3["confidences"]) == 3


def test_twenty_concurrent_requests(client, photos):
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda i: classify(client, photos[i % len(photos)]), range(20)))
    assert len(results) == 20 and all(len(r[0]["confidences"]) == 3 for r in results)
    assert time.monotonic() - start < 120
    s3, *_ = classify(client, photos[0])
    assert labels_of(s3)


def _browser():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        if os.environ.get("S3_REQUIRE_BROWSER"):
            raise RuntimeError("chromium and chromedriver are required (apt-get install chromium chromium-driver)")
        pytest.skip("chromium/chromedriver not installed (Debian: apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,1500",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=options)


def test_browser_upload_classify_and_screenshot(app, photos):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser = _browser()
    try:
        browser.get(app.url)
        wait = WebDriverWait(browser, 60)
        upload = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#image-input input[type=file]")))
        upload.send_keys(str(photos[0]))
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#image-input img"))  # the upload has landed
        box = browser.find_element(By.CSS_SELECTOR, "textarea, input[type=text]")
        box.clear()
        box.send_keys("cat, dog, cup of coffee")
        button = browser.find_element(By.ID, "classify")
        wait.until(lambda b: not b.find_elements(By.CSS_SELECTOR, "#image-input .translucent"))
        browser.execute_script("arguments[0].click();", button)
        wait.until(lambda b: "cup of coffee" in b.find_element(By.ID, "s3-result").text)
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#projection img"))
        assert "cat" in browser.find_element(By.ID, "clip-result").text
        out = Path(os.environ.get("S3_SCREENSHOT_DIR", str(ROOT / "docs")))
        out.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(out / "space_app.png"))
        assert (out / "space_app.png").stat().st_size > 10_000
    finally:
        browser.quit()


def test_bundled_examples_and_a_hub_space(app, client, small_space, tmp_path, monkeypatch):
    from helpers import fake_hub, folder_files

    examples = app.example_photos()
    assert [Path(p).stem for p in examples] == ["chelsea", "coffee", "astronaut", "rocket"]
    s3, _clip, *_ = classify(client, examples[1], labels=app.EXAMPLE_LABELS, synonyms=app.EXAMPLE_SYNONYMS)
    assert {c["label"] for c in s3["confidences"]} <= set(app.parse_labels(app.EXAMPLE_LABELS))
    files = folder_files(small_space.save_pretrained(tmp_path / "space"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "cache"))
    with fake_hub({"org/pets-s3": files}):
        s3, *_ = classify(client, examples[0], labels="", space="org/pets-s3")
    assert {c["label"] for c in s3["confidences"]} == set(small_space.labels)
