"""Docs that cannot rot: every relative link and anchor in README.md and docs/ resolves, every
``streams …`` command they show exists, every environment variable they name is a setting (and every
setting is documented), and every Prometheus alert rule links to its runbook entry."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest
import yaml

from streams.cli import DOCS, build_parser
from streams.settings import Settings
from tests.conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
CODE_BLOCK = re.compile(r"```.*?```", re.S)
TEST_HOOKS = "STREAMS_TEST_"  # the suite's own knobs (docs/reliability.md), read by tests, not settings


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    text = "".join(c for c in text if c in " -" or unicodedata.category(c)[0] in "LN")
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in CODE_BLOCK.sub("", page.read_text()).splitlines():
        if m := re.match(r"#{1,6}\s+(.*)", line):
            base = slug(m.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
    found |= set(re.findall(r'<a (?:id|name)="([^"]+)"', page.read_text()))
    return found


def links(page: Path) -> list[str]:
    text = CODE_BLOCK.sub("", page.read_text())
    text = re.sub(r"`[^`\n]*`", "", text)
    return [a or b for a, b in LINK.findall(text)]


def broken_links(pages: list[Path]) -> list[str]:
    broken = []
    for page in pages:
        name = page.relative_to(ROOT) if page.is_relative_to(ROOT) else page.name
        for target in links(page):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            path, _, fragment = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            if not resolved.exists():
                broken.append(f"{name}: {target} (no such file)")
            elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
                broken.append(f"{name}: {target} (no such heading)")
    return broken


def test_every_relative_link_and_anchor_resolves() -> None:
    assert not broken_links(PAGES)


def test_the_link_check_finds_a_broken_link_and_a_broken_anchor(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# A heading, with `code`\n\n## Twice\n\n## Twice\n")
    page = tmp_path / "page.md"
    page.write_text("[ok](other.md#a-heading-with-code) [ok](other.md#twice-1) [gone](missing.md) "
                    "[bad](other.md#nowhere) `[not a link](x.md)` [web](https://example.com/x)\n")
    found = [line.split(": ", 1)[1] for line in broken_links([page])]
    assert found == ["missing.md (no such file)", "other.md#nowhere (no such heading)"]


def shown_commands() -> set[str]:
    """``streams <subcommand>`` as the docs show it, in code blocks and inline code."""
    commands = set()
    for page in PAGES:
        text = page.read_text()
        code = "\n".join(CODE_BLOCK.findall(text)) + "\n" + "\n".join(re.findall(r"`([^`\n]+)`", text))
        commands |= set(re.findall(r"(?:^|[\s/])streams ([a-z][a-z-]*)", code, re.M))
    return commands


def test_every_streams_command_the_docs_show_exists_and_its_help_names_a_page_that_exists(capsys) -> None:
    commands = shown_commands()
    assert {"worker", "eval-stories", "kafka"} <= commands, "the scan found too little to mean anything"
    parser = build_parser()
    for name in sorted(commands | set(DOCS)):
        with pytest.raises(SystemExit) as done:
            parser.parse_args([name, "--help"])
        assert done.value.code == 0, f"streams {name} --help"
        assert f"Read: {DOCS[name]}" in capsys.readouterr().out
    index = ROOT / "help-pages.md"  # the pages the help names, checked as links from the repository root
    try:
        index.write_text("\n".join(f"[{name}]({page})" for name, page in DOCS.items()))
        assert not broken_links([index])
    finally:
        index.unlink()


def named_variables() -> set[str]:
    return {v for page in PAGES for v in re.findall(r"STREAMS_[A-Z0-9_]+", page.read_text())}


def test_every_environment_variable_named_is_a_setting_and_every_setting_is_documented() -> None:
    settings = {f"STREAMS_{name.upper()}" for name in Settings.model_fields}
    named = named_variables()
    unknown = []
    for var in named - settings:
        if var.startswith(TEST_HOOKS):
            continue
        if var.endswith("_") and any(s.startswith(var) for s in settings):  # a family: STREAMS_STORIES_*
            continue
        unknown.append(var)
    assert not unknown, f"named in the docs but not settings: {sorted(unknown)}"
    assert not settings - named, f"settings no page documents: {sorted(settings - named)}"


def test_every_prometheus_alert_rule_links_to_its_runbook_entry() -> None:
    rules = yaml.safe_load((ROOT / "deploy/prometheus/rules.yml").read_text())
    operations = ROOT / "docs" / "operations.md"
    found = anchors(operations)
    alerts = [r for group in rules["groups"] for r in group["rules"] if "alert" in r]
    assert alerts
    for rule in alerts:
        url = rule.get("annotations", {}).get("runbook_url", "")
        path, _, fragment = url.partition("#")
        assert path.endswith("docs/operations.md") and fragment in found, (rule["alert"], url)
