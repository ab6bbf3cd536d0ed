"""The prose a newcomer reads first says what the code does: presets, commands, modules, defaults."""
import re

import pytest

from helpers import config
from helpers.cli import build_parser
from helpers.paths import PROJECT

README = (PROJECT / "README.md").read_text(encoding="utf-8")
BOOK = {p.name: p.read_text(encoding="utf-8") for p in (PROJECT / "book").glob("*.md")}


def test_the_readme_names_every_preset_and_every_command():
    for name in config.PRESETS:
        assert f"`{name}`" in README, name
    commands = build_parser()._subparsers._group_actions[0].choices
    table = re.findall(r"^\| `(\w+)[^`]*` \|", README, flags=re.M)  # the commands table's first column
    assert set(commands) <= set(table), set(commands) - set(table)


def test_the_readme_layout_lists_every_module_and_only_modules_that_exist():
    listed = set(re.findall(r"^\s+(\w+\.py)\b", README, flags=re.M))
    modules = {p.name for p in (PROJECT / "helpers").glob("*.py")} - {"__init__.py", "__main__.py"}
    assert modules <= listed, modules - listed
    for name in listed:
        assert list(PROJECT.glob(f"**/{name}")), f"the README lists {name}, which does not exist"


@pytest.mark.parametrize("option", sorted(config.RETIRED))
def test_no_page_offers_a_retired_option(option):
    flag = "--" + option.replace("_", "-")
    for name, text in {"README.md": README, **BOOK}.items():
        assert flag not in text, f"{name} still offers {flag}"


def test_the_default_vocabulary_quoted_is_the_one_prepare_uses():
    quoted = f"{config.DEFAULT_VOCAB_SIZE:,}"
    assert quoted in BOOK["your_domain.md"]
    for name, text in {"README.md": README, "your_domain.md": BOOK["your_domain.md"]}.items():
        for claim in re.findall(r"default vocabulary (?:is |of )?([\d,]+)", text):
            assert claim == quoted, (name, claim)


def test_no_page_quotes_a_private_path():
    for name, text in {"README.md": README, **BOOK}.items():
        assert not re.search(r"(?<![\w.])/(?:work|tmp|home|root)/", text), name
