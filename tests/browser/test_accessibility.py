"""Every page a release manager, a stakeholder, an administrator and an anonymous visitor can
reach, in real Chromium at 1280 px and 390 px, with realistic data: axe-core (from the npm
registry, `npm ci` at the repository root) finds no WCAG 2.0/2.1 A or AA violation, and no page
scrolls sideways.

The pages are found the way a person finds them: from each role's start pages, every link inside
the page is followed once per kind of address (digits stand for ids, so `/upgrades/7/` and
`/upgrades/9/` are one kind), and the pages named below are visited whatever the links say (an
upgrade of each type, a passed and a failed run, an incident, a message, a flag, ...).

axe is injected with `context.add_init_script(path=...)`: Playwright evaluates init scripts
through the DevTools protocol, which the page's Content-Security-Policy (no 'unsafe-inline')
does not govern, so the policy stays on for the sweep (test_csp.py checks it is on)."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.utils import timezone

from tests.browser.conftest import sign_in
from tests.conftest import PASSWORD, drive, mark_deployed

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AXE = Path(settings.BASE_DIR) / "node_modules" / "axe-core" / "axe.min.js"
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
WIDTHS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}
MAX_PAGES_PER_ROLE = 90

# Addresses that are not pages a person reads: files, feeds, APIs, sign-out, the Django admin
# (superusers only, Django's own), the provider's sign-in, one-time links.
SKIP = re.compile(
    r"^/$|^/(admin|api|oidc|accounts/logout)/|\.(json|ics|md|atom|txt)$|/download/$|/log/$"
    r"|^/status/(confirm|unsubscribe)/|^/ofrep/|^/setup/join/"
)

AXE_RUN = """async (tags) => {
  // WCAG 2.1 A/AA, and touch targets of at least 24 px (axe files that rule under 2.2 AA).
  const result = await axe.run(document, {runOnly: {type: "tag", values: tags},
                                          rules: {"target-size": {enabled: true}},
                                          resultTypes: ["violations"]});
  return result.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help,
    targets: v.nodes.slice(0, 6).map((n) => n.target.join(" ")),
    count: v.nodes.length,
  }));
}"""

OVERFLOW = """() => {
  const width = window.innerWidth;
  const wide = [...document.querySelectorAll("body *")].filter((el) => {
    const r = el.getBoundingClientRect();
    return r.right > width + 1 && getComputedStyle(el).position !== "fixed";
  }).slice(0, 5).map((el) => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "")
    + (el.className && typeof el.className === "string" ? "." + el.className.split(" ")[0] : ""));
  return {scroll: document.scrollingElement.scrollWidth, width, wide};
}"""

# What axe leaves to other rules or lets pass when one of several ids exists: every id that an
# aria-describedby, aria-labelledby, aria-controls or label[for] names is on the page, once.
REFERENCES = """() => {
  const problems = [];
  const counts = {};
  document.querySelectorAll("[id]").forEach((el) => { counts[el.id] = (counts[el.id] || 0) + 1; });
  Object.entries(counts).filter(([, n]) => n > 1)
    .forEach(([id, n]) => problems.push(`id "${id}" is used ${n} times`));
  for (const attr of ["aria-describedby", "aria-labelledby", "aria-controls"]) {
    document.querySelectorAll(`[${attr}]`).forEach((el) => {
      el.getAttribute(attr).split(/\\s+/).filter(Boolean).forEach((id) => {
        if (!document.getElementById(id)) problems.push(`${attr}="${id}" names no element`);
      });
    });
  }
  document.querySelectorAll("label[for]").forEach((label) => {
    if (!document.getElementById(label.htmlFor)) problems.push(`label for="${label.htmlFor}" names no element`);
  });
  return problems;
}"""

LINKS = """() => [...document.querySelectorAll("a[href]")]
  .map((a) => a.href).filter((h) => h.startsWith(location.origin))"""


def _kind(path: str) -> str:
    return re.sub(r"/\d+(?=/|$|\.)", "/N", path)


def _realistic_data(make_upgrade, manager, staging, demo_environment):
    """An upgrade of each type at each stage, runs passed and failed, a rolled-back production
    patch with its incident, reviews, messages, flags, freezes, tokens, channels."""
    from comms import services as comms
    from comms.models import Audience, AudienceKey, Channel, ChannelKind
    from flags import services as flag_services
    from flags.models import FlagEnvironment
    from tests.comms._status_helpers import HEALTHY
    from tests.comms.conftest import upgrade_context
    from upgrades import reactions
    from upgrades import services as upgrade_services
    from upgrades.models import CheckRun, Environment, EnvironmentKind, RunKind, RunStatus

    production = Environment.objects.create(
        name="Production", slug="production", kind=EnvironmentKind.PRODUCTION,
        base_url="http://127.0.0.1:9",
    )  # fmt: skip
    comms.status_health_record(environment_key="production", environment_name="Production",
                               document=HEALTHY, error="", public=True)  # fmt: skip
    minor = make_upgrade("minor", environment=demo_environment, title="Mycelia 1.5.0")
    upgrade_services.upgrade_act(
        upgrade=minor, action="start", by=manager, override_reason="staging soaked a week"
    )
    now = timezone.now()
    steps = minor.steps.filter(phase__stage="pre").order_by("phase__order", "order")
    for step, status, reason in (
        (steps[0], RunStatus.PASSED, "GET /health answered 200 in 42 ms"),
        (steps[1], RunStatus.FAILED, "GET /health answered 503"),
    ):
        CheckRun.objects.create(
            upgrade=minor, step=step, kind=RunKind.CHECK, action=step.kind, title=step.title,
            status=status, reason=reason, started_at=now - timedelta(seconds=3),
            finished_at=now, duration_ms=2900, output="checking...\nanswer: 503\n",
        )  # fmt: skip
    upgrade_services.step_skip(step=steps[2], by=manager, reason="done by hand last night")
    major = make_upgrade("major", title="Mycelia 2.0.0", environment=staging)
    make_upgrade("feature_flag", environment=staging, title="New checkout")
    scheduled = make_upgrade("minor", title="Mycelia 1.5.1", environment=staging)
    drive(scheduled, manager, to="scheduled")
    done = drive(make_upgrade("minor", title="Mycelia 1.4.9", environment=staging), manager,
                 to="completed")  # fmt: skip
    reactions.events_react(upgrade_id=done.pk)
    watched = drive(make_upgrade("minor", title="Mycelia 1.4.8", environment=staging), manager,
                    to="monitoring")  # fmt: skip
    reactions.events_react(upgrade_id=watched.pk)
    cut_off = drive(make_upgrade("minor", title="Mycelia 1.4.7", environment=staging), manager,
                    to="in_progress")  # fmt: skip
    interrupted = CheckRun.objects.create(
        upgrade=cut_off, kind=RunKind.DEPLOY, action="deploy", title="Deploy 1.5.0",
        status=RunStatus.INTERRUPTED, reason="the worker stopped while it ran",
        started_at=now - timedelta(minutes=3), finished_at=now,
    )  # fmt: skip
    patch = drive(make_upgrade("emergency", environment=production, title="CVE-2026-1234 patch"),
                  manager, to="in_progress")  # fmt: skip
    mark_deployed(patch)
    upgrade_services.status_move(upgrade=patch, transition="roll_back", by=manager,
                                 reason="the patch broke sign-in for SSO users")  # fmt: skip
    reactions.events_react(upgrade_id=patch.pk)
    reactions.events_react(upgrade_id=major.pk)

    internal = Audience.objects.get(key=AudienceKey.INTERNAL)
    Channel.objects.create(audience=internal, name="Release chat", kind=ChannelKind.SLACK,
                           url="https://hooks.slack.com/services/T0/B0/" + "X" * 60)  # fmt: skip
    comms.message_draft_create(
        upgrade_id=major.pk, template_key="progress", context=upgrade_context(major), by=manager,
        environment_key="staging",
    )  # fmt: skip

    environment = FlagEnvironment.objects.get(key="staging")
    flag = flag_services.flag_create(key="dark-mode", description="Dark mode", by=manager,
                                     via="ui", tags="ui, beta")  # fmt: skip
    flag_services.flag_set_state(flag=flag, environment=environment, on=True, by=manager,
                                 via="ui", reason="beta users asked")  # fmt: skip
    flag_services.api_token_create(
        user=manager, name="CI pipeline", scope="evaluation", environment=environment
    )
    upgrade_services.freeze_create(
        name="Year-end", reason="Books are closing.", environments=[staging, production],
        starts_at=now + timedelta(days=10), ends_at=now + timedelta(days=12), weekly=False,
        by=manager,
    )  # fmt: skip
    runs = minor.runs.order_by("pk")
    return {"minor": minor, "draft": major, "passed": runs[0], "failed": runs[1],
            "interrupted": interrupted}  # fmt: skip


def _check(page, where: str) -> list[str]:
    """What axe, the id references and the width say about the page as it is now."""
    problems = []
    for v in page.evaluate(AXE_RUN, TAGS):
        problems.append(
            f"{where}: {v['id']} ({v['impact']}) x{v['count']}: {v['help']}\n"
            + "".join(f"      {t}\n" for t in v["targets"])
        )
    problems += [f"{where}: {p}" for p in page.evaluate(REFERENCES)]
    fit = page.evaluate(OVERFLOW)
    if fit["scroll"] > fit["width"]:
        problems.append(
            f"{where}: scrolls sideways, {fit['scroll']} px wide on a {fit['width']} px"
            f" screen; wide: {', '.join(fit['wide'])}"
        )
    return problems


def _axe_or_skip() -> None:
    if not AXE.exists():
        if os.environ.get("CI"):
            pytest.fail("axe-core is missing: .ci/run installs it with `npm ci`.")
        pytest.skip("axe-core is not installed: run `npm ci` at the repository root")


def _sweep(context, start: list[str], label: str, width: str) -> tuple[list[str], list[str]]:
    """Visit the start pages and every kind of page linked from them; return the problems."""
    page = context.new_page()
    problems: list[str] = []
    seen_kinds: set[str] = set()
    visited: list[str] = []
    queue = list(start)
    forced = set(start)
    while queue and len(visited) < MAX_PAGES_PER_ROLE:
        path = queue.pop(0)
        kind = _kind(path)
        if path in visited or (kind in seen_kinds and path not in forced):
            continue
        seen_kinds.add(kind)
        response = page.goto(path)
        if response is None or "text/html" not in response.headers.get("content-type", ""):
            continue
        if response.status >= 400:
            problems.append(f"[{label} {width}] {path} answered {response.status}")
            continue
        visited.append(path)
        problems += _check(page, f"[{label} {width}] {path}")
        for href in page.evaluate(LINKS):
            target = urlsplit(href).path
            if not SKIP.search(target) and target not in visited:
                queue.append(target)
    page.close()
    return visited, problems


# One test per role and width, so that the parallel run spreads the sweep over every core.
@pytest.mark.parametrize("width", list(WIDTHS))
@pytest.mark.parametrize("label", ["manager", "stakeholder", "admin", "visitor"])
def test_every_page__each_role_at_1280_and_390_px__no_wcag_violation_and_no_sideways_scroll(
    browser, live_server, make_upgrade, manager, stakeholder, staging, demo_environment,
    label, width,
):  # fmt: skip
    _axe_or_skip()
    data = _realistic_data(make_upgrade, manager, staging, demo_environment)
    User.objects.create_superuser("root", "root@example.com", PASSWORD)
    minor, draft = data["minor"], data["draft"]

    # Sign the role in; the sweep's context reuses the cookies
    state: dict | None = None
    username = {"manager": "alice", "stakeholder": "bob", "admin": "root"}.get(label)
    if username:
        context = browser.new_context(base_url=live_server.url)
        page = context.new_page()
        if label == "admin":
            page.goto("/accounts/login/")
            page.fill("input[name=username]", username)
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_load_state()
        else:
            sign_in(page, username, PASSWORD)
        state = context.storage_state()
        context.close()

    from upgrades.models import Upgrade

    upgrade_pages = [u.get_absolute_url() for u in Upgrade.objects.order_by("pk")]
    starts = {
        "manager": [
            "/upgrades/", "/upgrades/dashboard/", *upgrade_pages,
            f"/upgrades/{minor.pk}/runs/{data['passed'].pk}/",
            f"/upgrades/{minor.pk}/runs/{data['failed'].pk}/",
            f"/upgrades/{data['interrupted'].upgrade_id}/runs/{data['interrupted'].pk}/", f"/upgrades/{minor.pk}/timeline/",
            f"/upgrades/{minor.pk}/report/", f"/upgrades/{draft.pk}/edit/", "/upgrades/new/",
            "/upgrades/freezes/", "/upgrades/lessons/", "/flags/", "/flags/new/",
            "/flags/dark-mode/", "/flags/tokens/", "/comms/messages/", "/comms/channels/",
            "/comms/channels/new", "/comms/incidents/", "/status/", "/status/history/",
        ],
        "stakeholder": ["/upgrades/", "/upgrades/dashboard/", *upgrade_pages, "/status/"],
        "admin": ["/setup/", "/setup/environments/", f"/setup/environments/{staging.pk}/",
                  f"/setup/environments/{demo_environment.pk}/", "/setup/environments/new/",
                  "/setup/playbooks/", "/setup/common-issues/", "/setup/people/",
                  "/setup/history/"],
        "visitor": ["/accounts/login/", "/status/", "/status/history/"],
    }  # fmt: skip

    context = browser.new_context(
        base_url=live_server.url, viewport=WIDTHS[width], storage_state=state
    )
    context.set_default_timeout(10_000)
    context.add_init_script(path=str(AXE))
    visited, problems = _sweep(context, starts[label], label, width)
    context.close()
    print(label, width, "visited:", " ".join(visited))

    # Some pages of each kind, and none left out because the sweep hit its cap
    assert 3 <= len(visited) < MAX_PAGES_PER_ROLE, len(visited)
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)


def test_forms_answered_with_errors__1280_and_390_px__no_wcag_violation_and_no_sideways_scroll(
    browser, live_server, manager, playbook, staging
):
    """The pages a mistake leads to: a wrong password, a flag name that is not a key, a new
    upgrade with its required fields left empty (the browser's own checks turned off, as an
    older browser or a script would send it)."""
    _axe_or_skip()
    problems: list[str] = []
    for width, viewport in WIDTHS.items():
        context = browser.new_context(base_url=live_server.url, viewport=viewport)
        context.set_default_timeout(10_000)
        context.add_init_script(path=str(AXE))
        page = context.new_page()

        page.goto("/accounts/login/")
        page.fill("input[name=username]", manager.username)
        page.fill("input[name=password]", "not-the-password")
        page.click("button[type=submit]")
        page.wait_for_selector("[role=alert], .error, .alert")
        problems += _check(page, f"[visitor {width}] wrong password")

        sign_in(page, manager.username, PASSWORD)
        page.goto("/flags/new/")
        page.fill("input[name=key]", "Not a key!")
        page.click("button[type=submit].primary")
        page.wait_for_selector("[role=alert]")
        problems += _check(page, f"[manager {width}] /flags/new/ with a bad name")

        page.goto("/upgrades/new/")
        page.evaluate("document.querySelectorAll('form').forEach((f) => f.noValidate = true)")
        page.click("form.stacked button[type=submit]")
        page.wait_for_selector("form.stacked .has-error")
        problems += _check(page, f"[manager {width}] /upgrades/new/ left empty")
        context.close()

    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)
