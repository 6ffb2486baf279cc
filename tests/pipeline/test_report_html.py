"""report.html and its plots: content, escaping, null optional parts, and a render to PNG in
headless Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tinyshare.pipeline.report import plots
from tinyshare.pipeline.report.html import run_html


import report_fixtures as fx  # noqa: E402  (registered by conftest.py)

EVIL = '<script>alert("x")</script>'


def _boards() -> list[dict]:
    nano = fx.fail_flash_budget(fx.board_report("tflm", name="nano33-ble-sense"))
    return [fx.board_report("tflm"), fx.board_report("linux"), fx.board_report("ethosu"), nano]


@pytest.fixture(scope="module")
def page() -> str:
    return run_html(fx.summary(_boards()))


def _section(html: str, heading: str) -> str:
    """The HTML from ``<h2>heading`` up to the next ``<h2>``."""
    start = html.index(f"<h2>{heading}")
    end = html.find("<h2>", start + 4)
    return html[start:] if end < 0 else html[start:end]


def test_page_is_self_contained(page):
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") >= 3
    assert "<script" not in page.lower()
    for remote in ('href="http', "href='http", 'src="http', "url(http", "@import", "<link",
                   "<img"):
        assert remote not in page


def test_board_table_has_one_row_per_board_with_its_numbers(page):
    boards = _section(page, "Boards")
    assert boards.count("<tr>") == 1 + 4  # header + boards
    for name in ("stm32f746g-disco", "rpi4b", "alif-e7-u55", "nano33-ble-sense"):
        assert f"<b>{name}</b>" in boards
    assert boards.count('class="badge PASS"') == 2 and boards.count('class="badge FAIL"') == 2
    # nano33: flash need 1,200,000 B of 917,504 B = 130.79 %, meter full and red
    assert '<b>1,200,000 B</b> <span class="nowrap">of 917,504 B</span><br>130.79 %' in boards
    assert '<span class="over" style="width:100.0%">' in boards
    # stm32: 90,956 / 917,504 = 9.91 %; RAM 8,320 / 262,144 = 3.17 %
    assert '<b>90,956 B</b> <span class="nowrap">of 917,504 B</span><br>9.91 %' in boards
    assert '<b>8,320 B</b> <span class="nowrap">of 262,144 B</span><br>3.17 %' in boards
    assert "96.67 %" in boards  # the Ethos-U board's worst int8 top-1
    assert "3 LSB" in boards  # rpi4b's onnxruntime[ORT_ENABLE_ALL]
    assert "estimate − measured: -384 B (-4.6 %)" in boards
    assert "none (no TFLM arena on this board)" in boards  # the Linux board
    assert "runtime code not counted" in boards and "peak RSS not measured" in boards


def test_violations_are_listed_per_board(page):
    v = _section(page, "Violations")
    assert '<span class="kind">budget</span> <b>flash budget</b>' in v
    assert "need 1,200,000 B, have 917,504 B, reserved 131,072 B" in v
    assert "agreement of onnxruntime[ORT_ENABLE_ALL] with litert-ref" in v
    assert v.count("<li>") == 2


def test_per_layer_table_has_every_op_and_vela_columns(page):
    layers = _section(page, "Per layer")
    main_table = layers[:layers.index("</table>")]
    assert main_table.count("<tr>") == 1 + 16 + 1  # header, 16 ops, totals
    assert "FULLY_CONNECTED" in main_table and "62,976" in main_table and "3,221" in main_table
    assert "Vela: placement" in main_table and "cycles (Vela&#x27;s estimate)" in main_table
    assert "buffer 20" in main_table  # the shared pointwise weight
    assert "<details>" in layers and "model_int8.onnx (10 ops)" in layers


def test_vela_section_is_labelled_an_estimate(page):
    vela = _section(page, "Ethos-U (Vela)")
    assert "Vela&#x27;s estimate, not a measurement" in vela
    assert "21,480" in vela and "0.0429 ms at 500 MHz NPU clock" in vela
    assert "alif-e7-u55" in vela and "stm32f746g-disco" not in vela


def test_shared_against_twin_section(page):
    twin = _section(page, "Weight-shared model against its unshared twin")
    assert "<svg" in twin
    assert "<td>unique parameters (float elements)</td>" in twin
    assert "3,027" in twin and "3,594" in twin and "+567" in twin
    assert "96.94 %" in twin and "97.50 %" in twin and "+0.56 points" in twin


def test_strings_from_the_report_are_escaped():
    r = fx.board_report("tflm", name=EVIL)
    r["board"]["display_name"] = "A & B <i>"
    r["per_layer"]["tflite_int8"]["rows"][0]["name"] = 'x" onmouseover="y'
    r["checks"][0]["detail"] = "<b>bad</b>"
    html = run_html(fx.summary([fx.fail_flash_budget(r)]))
    assert "<script" not in html and "<i>" not in html
    assert '" onmouseover="' not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "A &amp; B &lt;i&gt;" in html


def test_only_linux_boards_without_optional_parts():
    r = fx.board_report("linux")
    r["footprint"]["ram"]["peak_rss_bytes"] = None
    html = run_html(fx.summary([r]))
    assert "Ethos-U (Vela)" not in html and "Vela&#x27;s estimate" not in html
    assert "TFLM arena, measured" not in html
    assert html.count("<svg") == 3
    r["footprint"]["ram"]["peak_rss_bytes"] = 48_234_496
    assert "peak RSS 48,234,496 B (emulated)" in run_html(fx.summary([r]))


def test_version_1_footprint_fallback():
    r = fx.board_report("tflm")
    del r["footprint"]["flash"], r["footprint"]["ram"], r["per_layer"]
    html = run_html(fx.summary([r]))
    assert '<b>90,956 B</b> <span class="nowrap">of 917,504 B</span>' in html
    assert "No per-layer data" in html


def test_output_is_deterministic(page):
    assert run_html(fx.summary(_boards())) == page


def test_layer_memory_plot_marks_shared_layers():
    svg = plots.layer_memory_svg(fx.board_report("tflm")["per_layer"]["tflite_int8"])
    assert svg.startswith("<svg") and "<?xml" not in svg and "<!DOCTYPE" not in svg
    # text is drawn as paths; matplotlib keeps each label in a comment
    for label in ("0 DEPTHWISE_CONV_2D -->", "2 DEPTHWISE_CONV_2D (shared)",
                  "11 CONV_2D (shared)", "64 + 256 shared", "shared weights read again"):
        assert label in svg
    assert "1 RESHAPE (shared)" not in svg
    assert "<pattern" in svg  # the hatch of shared bytes
    for key in ("weights", "reused", "activations"):
        assert plots.COLORS[key] in svg


def test_accuracy_flash_plot_one_point_per_board():
    boards = _boards()
    twin = fx.board_report("tflm", name="twin-board")  # same (flash, top-1) as stm32
    svg = plots.accuracy_flash_svg(boards + [twin])
    for label in ("rpi4b (FAIL)", "alif-e7-u55 (PASS)", "nano33-ble-sense (FAIL)",
                  "stm32f746g-disco (PASS)", "twin-board (PASS)"):
        assert label in svg
    assert "worst int8 top-1 across runtimes (%)" in svg
    assert "flash needed (bytes, log scale)" in svg
    assert plots.COLORS["pass"] in svg and plots.COLORS["fail"] in svg
    r = fx.board_report("linux")
    del r["footprint"]["flash"]  # version-1 key only
    assert "rpi4b (FAIL)" in plots.accuracy_flash_svg([r])


def test_shared_twin_plot_with_and_without_arena():
    r = fx.board_report("tflm")
    args = (r["model"], r["storage"], r["accuracy"])
    with_arena = plots.shared_twin_svg(*args, r["footprint"]["ram"]["arena"])
    for label in ("TFLM arena", "8,320", "7,664", "3,221", "3,864", "96.94 %", "97.50 %",
                  "3,027", "3,594"):
        assert label in with_arena
    assert "TFLM arena" not in plots.shared_twin_svg(*args, None)


def test_plot_labels_with_dollar_signs_do_not_become_math():
    r = fx.board_report("tflm", name="board$1$")
    assert "board$1$ (PASS)" in plots.accuracy_flash_svg([r])


def _chromium() -> str | None:
    return shutil.which("chromium")


@pytest.mark.slow
def test_renders_in_headless_chromium(tmp_path, page):
    """Render report.html to a 1400×4000 PNG and check it is a real page with the plots."""
    import numpy as np
    from PIL import Image

    exe = _chromium()
    if exe is None:
        if os.geteuid() != 0:
            pytest.skip("chromium is not installed and we are not root: install Debian's "
                        "chromium package ('sudo apt-get install chromium'); `make test` "
                        "installs it when run as root")
        pytest.fail("chromium is not installed; as root, `make test` installs it")
    html = tmp_path / "report.html"
    html.write_text(page, encoding="utf-8")
    png = tmp_path / "report.png"
    subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={png}",
                    "--window-size=1400,4000", html.as_uri()],
                   check=True, capture_output=True, timeout=180)
    assert png.is_file()
    image = Image.open(png).convert("RGB")
    assert image.size == (1400, 4000)
    pixels = np.asarray(image).reshape(-1, 3).astype(int)
    assert len(np.unique(pixels, axis=0)) > 500  # text, tables, plots: not a blank page

    def count(hex_colour: str, tol: int = 12) -> int:
        rgb = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
        return int((np.abs(pixels - rgb).max(axis=1) <= tol).sum())

    for key in ("weights", "activations", "pass", "fail"):  # bars, markers and badges
        assert count(plots.COLORS[key]) > 200, key
