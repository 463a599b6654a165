"""The Content-Security-Policy: on every HTML page, and nothing on the pages it would block
(inline scripts, style attributes or blocks, inline event handlers, javascript: links), so the
policy cannot be broken without a test failing."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from django.urls import reverse

from comms import services as comms
from flags import services as flags
from flags.models import Via

pytestmark = pytest.mark.django_db

POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "frame-ancestors": "'none'",
    "form-action": "'self'",
    "base-uri": "'self'",
}


class _InlineFinder(HTMLParser):
    """Collects what a policy without 'unsafe-inline' (and without nonces) would block."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        where = f"<{tag} {' '.join(f'{k}={v!r}' for k, v in attrs)[:120]}>"
        if tag == "script" and not names.get("src") and names.get("type") != "application/json":
            self.problems.append(f"inline script {where}")
        if tag == "style":
            self.problems.append(f"style block {where}")
        for name, value in attrs:
            if name == "style":
                self.problems.append(f"style attribute {where}")
            elif name.startswith("on") or name.startswith("hx-on"):
                self.problems.append(f"event handler attribute {name} {where}")
            elif name in {"href", "src", "action"} and (value or "").strip().lower().startswith(
                "javascript:"
            ):
                self.problems.append(f"javascript: URL {where}")
            elif name == "hx-trigger" and "[" in re.sub(r"(from|target):\S+", "", value or ""):
                # htmx runs a trigger filter through eval, which the policy refuses (a bracket
                # in the CSS selector of from: or target: is no filter).
                self.problems.append(f"eval'd hx-trigger filter {where}")


def inline_problems(html: str) -> list[str]:
    finder = _InlineFinder()
    finder.feed(html)
    return finder.problems


def _policy(response) -> dict[str, str]:
    header = response.headers.get("Content-Security-Policy", "")
    directives = [part.strip().split(None, 1) for part in header.split(";") if part.strip()]
    return {d[0]: (d[1] if len(d) > 1 else "") for d in directives}


def test_inline_problems__each_kind__found():
    html = (
        "<script>alert(1)</script><script src='/s.js'></script>"
        "<script type='application/json'>{}</script><style>p{}</style>"
        "<p style='color:red' onclick='x()'>x</p><a href='javascript:print()'>p</a>"
        "<div hx-on:click='x()' hx-trigger=\"every 2s [document.hidden]\"></div>"
        "<form hx-trigger='keyup from:input[name=q]'></form>"
    )
    kinds = [p.split(" <")[0] for p in inline_problems(html)]
    assert kinds == [
        "inline script",
        "style block",
        "style attribute",
        "event handler attribute onclick",
        "javascript: URL",
        "event handler attribute hx-on:click",
        "eval'd hx-trigger filter",
    ]


@pytest.fixture
def pages(make_upgrade, manager):
    """A representative page of each kind, with content on it."""
    upgrade = make_upgrade("minor")
    flags.flag_environment_ensure(key="staging", name="Staging")
    flag = flags.flag_create(key="new-checkout", description="x", by=manager, via=Via.UI, tags="")
    message = comms.message_draft_create(
        upgrade_id=upgrade.pk, template_key="pre_upgrade", by=manager,
        environment_key="staging", context={"version_or_feature": "1.5.0"},
    )  # fmt: skip
    comms.status_maintenance_sync(
        upgrade_id=upgrade.pk, title=upgrade.title, type_label="Minor", environment_key="staging",
        environment_name="Staging", status="in_progress", window_start=None, window_end=None,
        progress_percent=40, phase_title="Deploy", url="",
    )  # fmt: skip
    return {"upgrade": upgrade, "flag": flag, "message": message}


MANAGER_PAGES = [
    ("upgrades:dashboard", None),
    ("upgrades:list", None),
    ("upgrades:create", None),
    ("upgrades:lessons", None),
    ("upgrades:timeline", "upgrade"),
    ("flags:list", None),
    ("flags:create", None),
    ("flags:tokens", None),
    ("flags:detail", "flag"),
    ("comms:message_list", None),
    ("comms:message_detail", "message"),
    ("comms:channel_list", None),
    ("comms:channel_new", None),
    ("comms:status", None),
]


def _url(name: str, arg: str | None, pages: dict) -> str:
    if arg is None:
        return reverse(name)
    obj = pages[arg]
    return reverse(name, args=[obj.key if arg == "flag" else obj.pk])


@pytest.mark.parametrize(("name", "arg"), MANAGER_PAGES)
def test_page__as_manager__csp_header_and_nothing_inline(manager_client, pages, name, arg):
    response = manager_client.get(_url(name, arg, pages))

    assert response.status_code == 200
    assert _policy(response) == POLICY
    assert inline_problems(response.content.decode()) == []


def test_upgrade_page__as_manager__nothing_inline(manager_client, pages):
    response = manager_client.get(reverse("upgrades:detail", args=[pages["upgrade"].pk]))
    assert response.status_code == 200
    assert inline_problems(response.content.decode()) == []


def test_upgrade_page__as_manager__csp_header(manager_client, pages):
    response = manager_client.get(reverse("upgrades:detail", args=[pages["upgrade"].pk]))
    assert response.status_code == 200 and _policy(response) == POLICY


@pytest.mark.parametrize("name", ["comms:status", "login"])
def test_public_page__anonymous__csp_header_and_nothing_inline(client, pages, name):
    response = client.get(reverse(name))

    assert response.status_code == 200
    assert _policy(response) == POLICY
    assert inline_problems(response.content.decode()) == []


def test_error_page__anonymous__csp_header(client, db):
    response = client.get("/no-such-page/")
    assert response.status_code == 404 and _policy(response) == POLICY
    assert inline_problems(response.content.decode()) == []


def test_report__style_block__allowed_by_its_nonce_only(manager_client, pages):
    # Given the report, one self-contained file with its own <style>
    response = manager_client.get(reverse("upgrades:report", args=[pages["upgrade"].pk]))

    # Then the policy names that block's nonce, and nothing else is inline
    policy = _policy(response)
    nonce = policy["style-src"].removeprefix("'self' 'nonce-").removesuffix("'")
    assert policy["style-src"] == f"'self' 'nonce-{nonce}'" and len(nonce) >= 16
    html = response.content.decode()
    assert f'<style nonce="{nonce}">' in html
    problems = inline_problems(html)
    assert len(problems) == 1 and problems[0].startswith("style block <style nonce=")


def test_page_without_nonce__policy_has_no_nonce(manager_client, pages):
    response = manager_client.get(reverse("upgrades:list"))
    assert "nonce" not in response.headers["Content-Security-Policy"]


def test_run_page__queued_run__polls_without_a_filter_and_nothing_inline(manager_client, pages):
    from upgrades import services as upgrades

    upgrade = pages["upgrade"]
    step = upgrade.steps.filter(title="Run diagnostics").first() or upgrade.steps.first()
    run = upgrades.check_run_request(upgrade=upgrade, step=step, by=upgrade.owner)

    response = manager_client.get(reverse("upgrades:run", args=[upgrade.pk, run.pk]))

    html = response.content.decode()
    assert response.status_code == 200 and _policy(response) == POLICY
    assert 'hx-trigger="every 1s"' in html  # the poll is there, paused in hidden tabs by app.js
    assert inline_problems(html) == []
