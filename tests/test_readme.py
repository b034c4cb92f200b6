"""The README agrees with the code: its configuration table is the ``Overseer`` traits' table.

When an option is added or changed in overseer_nb/config.py, print the new table
with ``python tests/test_readme.py`` and paste it between the README's
``config-table`` markers.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
START, END = "<!-- config-table:start -->", "<!-- config-table:end -->"


def _default(trait) -> str:
    value = trait.default_value
    if value is None:
        return "`None`"
    if isinstance(value, str):
        return f"`{value!r}`"
    if isinstance(value, int) and not isinstance(value, bool) and value >= 2**20 and value % 2**20 == 0:
        return f"`{value}` ({value // 2**20} MiB)"
    return f"`{value}`"


def config_table() -> str:
    """The Markdown table of every configurable ``Overseer`` option: name, default, help."""
    from overseer_nb.config import Overseer

    rows = ["| option | default | what it does |", "| --- | --- | --- |"]
    for name, trait in Overseer.class_traits(config=True).items():
        help_text = " ".join(trait.help.split()).replace("|", "\\|")
        rows.append(f"| `{name}` | {_default(trait)} | {help_text} |")
    return "\n".join(rows)


def readme_table() -> str:
    text = README.read_text()
    assert START in text and END in text, f"README.md lost its {START} / {END} markers"
    return text.split(START, 1)[1].split(END, 1)[0].strip()


def test_readme_configuration_table_matches_the_traits():
    assert readme_table() == config_table(), (
        "README.md's configuration table differs from overseer_nb/config.py; "
        "regenerate it with: python tests/test_readme.py"
    )


def test_every_option_has_help_and_is_in_the_readme():
    from overseer_nb.config import Overseer

    traits = Overseer.class_traits(config=True)
    assert traits and all(t.help for t in traits.values())
    listed = re.findall(r"^\| `(\w+)` \|", readme_table(), flags=re.M)
    assert listed == list(traits)


def test_readme_keeps_the_two_commands_and_its_pictures():
    text = README.read_text()
    section = text.split("## Two commands", 1)[1]
    table = re.search(r"^\|.*?(?=\n\n)", section, flags=re.M | re.S).group(0)
    commands = re.findall(r"`(bash [^`]+)`", table)
    assert commands == ["bash scripts/demo.sh", "bash scripts/test.sh"]
    for picture in re.findall(r"\]\((docs/[^)]+\.png)\)", text):
        assert (ROOT / picture).exists(), picture
    assert "labpath=notebooks%2F01-quickstart.ipynb" in text


if __name__ == "__main__":  # print the table to paste into README.md
    print(config_table())
