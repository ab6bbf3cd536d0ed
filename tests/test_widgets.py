"""The widget panel's logic, without a browser (tests/test_browser.py drives it in Chromium)."""
import shutil

from helpers import widgets


def test_panel_generates_with_its_settings(tiny_run, tmp_path):
    run = tmp_path / "root" / "checkpoints" / "tiny"
    shutil.copytree(tiny_run, run)
    found = widgets.find_checkpoints()
    assert found == [run / "best.safetensors"]
    panel = widgets.SamplingPanel(prompt="Title:")
    assert [o[1] for o in panel.checkpoint.options] == [str(run / "best.safetensors")]
    panel.max_new_tokens.value = 20
    panel.seed.value = 4
    text = panel.generate()
    assert text.startswith("Title:") and "plotgpt-text" in panel.text.value
    assert panel.status.value.startswith("done") and not panel.button.disabled
    assert panel.generate() == text  # same seed, same text
    panel.do_sample.value = False
    s = panel.settings()
    assert s.do_sample is False and s.top_p is None and s.top_k == 50
    assert panel.bars.value[:8] == b"\x89PNG\r\n\x1a\n"  # the next-token bar chart was drawn


def test_panel_without_checkpoints_says_what_to_do(tmp_path):
    panel = widgets.SamplingPanel(checkpoints=[])
    assert panel.button.disabled and "plotgpt train" in panel.status.value
