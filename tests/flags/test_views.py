"""Flag pages, tried by a release manager, a stakeholder and an outsider."""

from __future__ import annotations

import pytest
from django.urls import reverse

from flags import runtime, services
from flags.models import ApiToken, Flag, FlagEvent, FlagState, Via


def _enabled(flag, env="production") -> bool:
    return FlagState.objects.get(flag=flag, environment__key=env).enabled


def _read_urls(flag):
    return [
        reverse("flags:list"),
        reverse("flags:detail", args=[flag.key]),
        reverse("flags:tokens"),
    ]


def _write_requests(flag):
    return [
        (reverse("flags:toggle", args=[flag.key, "staging"]), {"on": "1"}),
        (reverse("flags:create"), {"key": "x-y"}),
        (
            reverse("flags:targeting", args=[flag.key, "staging"]),
            {"staging-rollout_percentage": "5"},
        ),
        (reverse("flags:archive", args=[flag.key]), {}),
    ]


def test_pages__manager__read_and_write_controls_shown(manager_client, flag):
    for url in _read_urls(flag):
        assert manager_client.get(url).status_code == 200
    page = manager_client.get(reverse("flags:list")).content.decode()
    assert "Turn on" in page and "New flag" in page


def test_pages__stakeholder__reads_without_write_controls(stakeholder_client, flag):
    for url in _read_urls(flag):
        assert stakeholder_client.get(url).status_code == 200
    page = stakeholder_client.get(reverse("flags:list")).content.decode()
    assert "new-checkout" in page and "Turn on" not in page and "New flag" not in page
    detail = stakeholder_client.get(reverse("flags:detail", args=[flag.key])).content.decode()
    assert "Archive flag" not in detail and "Rollout and rules" not in detail


def test_writes__stakeholder__403_and_nothing_changes(stakeholder_client, flag):
    for url, data in _write_requests(flag):
        assert stakeholder_client.post(url, data).status_code == 403, url
    assert not _enabled(flag, "staging") and not Flag.objects.filter(key="x-y").exists()
    assert stakeholder_client.get(reverse("flags:create")).status_code == 403


def test_everything__outsider__403(outsider_client, flag):
    for url in _read_urls(flag):
        assert outsider_client.get(url).status_code == 403, url
    for url, data in _write_requests(flag):
        assert outsider_client.post(url, data).status_code == 403, url


def test_pages__anonymous__sent_to_sign_in(client, flag):
    response = client.get(reverse("flags:list"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_toggle__htmx_on_staging__row_partial_and_state_flipped(manager_client, flag, manager):
    response = manager_client.post(
        reverse("flags:toggle", args=[flag.key, "staging"]), {"on": "1"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith("<tr") and "<html" not in html
    assert "Turn off" in html
    assert _enabled(flag, "staging")
    event = FlagEvent.objects.filter(flag=flag).first()
    assert (event.via, event.actor) == (Via.UI, manager)


def test_toggle__htmx_from_detail__states_partial(manager_client, flag):
    response = manager_client.post(
        reverse("flags:toggle", args=[flag.key, "staging"]),
        {"on": "1", "view": "detail"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200 and 'id="states"' in response.content.decode()


def test_toggle__production_without_confirm__confirm_page_and_no_change(manager_client, flag):
    url = reverse("flags:toggle", args=[flag.key, "production"])
    response = manager_client.post(url, {"on": "1"})
    assert response.status_code == 200
    assert 'name="confirm" value="yes"' in response.content.decode()
    assert not _enabled(flag)
    # The no-JS confirmation form posts back with confirm=yes.
    done = manager_client.post(url, {"on": "1", "confirm": "yes", "next": "/flags/"})
    assert done.status_code == 302 and done["Location"] == "/flags/"
    assert _enabled(flag)


def test_toggle__production_row__asks_htmx_confirmation(manager_client, flag):
    page = manager_client.get(reverse("flags:list")).content.decode()
    assert "hx-confirm=" in page and '"confirm": "yes"' in page


def test_toggle__bad_value__400_page_not_500(manager_client, flag):
    response = manager_client.post(
        reverse("flags:toggle", args=[flag.key, "staging"]), {"on": "maybe"}
    )
    assert response.status_code == 400 and "on=1" in response.content.decode()


def test_toggle__unknown_flag_or_environment__404(manager_client, flag):
    assert (
        manager_client.post(
            reverse("flags:toggle", args=["ghost", "staging"]), {"on": "1"}
        ).status_code
        == 404
    )
    assert (
        manager_client.post(
            reverse("flags:toggle", args=[flag.key, "moon"]), {"on": "1"}
        ).status_code
        == 404
    )


def test_toggle__archived_flag_htmx__400_row_with_message(manager_client, flag, manager):
    services.flag_archive(flag=flag, by=manager, via=Via.UI)
    response = manager_client.post(
        reverse("flags:toggle", args=[flag.key, "staging"]), {"on": "1"}, HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 400 and "archived" in response.content.decode()


def test_create__valid__redirect_to_detail_off_everywhere(manager_client, environments):
    response = manager_client.post(
        reverse("flags:create"), {"key": "dark-mode", "description": "Dark", "tags": "ui, beta"}
    )
    flag = Flag.objects.get(key="dark-mode")
    assert response.status_code == 302 and response["Location"] == flag.get_absolute_url()
    assert flag.tag_list == ["ui", "beta"]
    assert not FlagState.objects.filter(flag=flag, enabled=True).exists()


@pytest.mark.parametrize(
    ("key", "needle"),
    [("Dark Mode", "lowercase"), ("new-checkout", "already exists"), ("", "required")],
)
def test_create__bad_input__400_with_message(manager_client, flag, key, needle):
    response = manager_client.post(reverse("flags:create"), {"key": key})
    assert response.status_code == 400 and needle in response.content.decode()


def test_targeting__valid__saved_and_recorded(manager_client, flag):
    rules = '[{"attribute": "country", "operator": "in", "values": ["nl"]}]'
    response = manager_client.post(
        reverse("flags:targeting", args=[flag.key, "staging"]),
        {"staging-rollout_percentage": "20", "staging-rules": rules, "staging-reason": "ramp"},
    )
    assert response.status_code == 302
    state = FlagState.objects.get(flag=flag, environment__key="staging")
    assert state.rollout_percentage == 20 and state.rules[0]["values"] == ["nl"]
    assert FlagEvent.objects.filter(flag=flag, kind="targeting", reason="ramp").exists()


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"staging-rollout_percentage": "120"}, "less than or equal to 100"),
        ({"staging-rollout_percentage": "5", "staging-rules": "[{"}, "not valid JSON"),
        (
            {
                "staging-rollout_percentage": "5",
                "staging-rules": '[{"attribute": "a", "operator": "gt"}]',
            },
            "Rule 1",
        ),
    ],
)
def test_targeting__bad_input__400_page_with_message(manager_client, flag, data, needle):
    response = manager_client.post(reverse("flags:targeting", args=[flag.key, "staging"]), data)
    assert response.status_code == 400 and needle in response.content.decode()
    assert FlagState.objects.get(flag=flag, environment__key="staging").rollout_percentage == 100


def test_detail__history_and_counts__shown(manager_client, flag, production, manager):
    services.flag_set_state(
        flag=flag, environment=production, on=True, by=manager, via=Via.API, reason="go live"
    )
    runtime.counter.record(flag.pk, production.pk, 7)
    page = manager_client.get(reverse("flags:detail", args=[flag.key])).content.decode()
    assert "Turned on" in page and "go live" in page
    assert "<svg" in page and "7 evaluations" in page


def test_list__search_tag_and_state_filters__narrow_results(manager_client, environments, manager):
    services.flag_create(key="search-v2", tags="search", by=manager, via=Via.UI)
    live = services.flag_create(key="checkout-fast", tags="checkout,beta", by=manager, via=Via.UI)
    services.flag_set_state(flag=live, environment=environments[1], on=True, by=manager, via=Via.UI)

    def keys(query: str) -> set[str]:
        html = manager_client.get(reverse("flags:list") + query).content.decode()
        return {k for k in ("search-v2", "checkout-fast") if f"<code>{k}</code>" in html}

    assert keys("?q=search") == {"search-v2"}
    assert keys("?tag=beta") == {"checkout-fast"}
    assert keys("?tag=bet") == set()
    assert keys("?state=on") == {"checkout-fast"}
    assert keys("?state=off") == {"search-v2"}


def test_list__many_flags__bounded_queries(
    manager_client, environments, manager, django_assert_max_num_queries, settings
):
    settings.PAGE_SIZE = 50
    for i in range(40):
        services.flag_create(key=f"flag-{i:02}", by=manager, via=Via.UI, tags="t")
    # session, user, groups, count, flags, states, environments, tags
    with django_assert_max_num_queries(9):
        response = manager_client.get(reverse("flags:list"))
    assert response.content.decode().count("Turn on") == 80


def test_tokens__create_then_revoke__plaintext_shown_once(manager_client, manager):
    response = manager_client.post(reverse("flags:tokens"), {"name": "ci", "scope": "user"})
    assert response.status_code == 200
    token = ApiToken.objects.get(user=manager)
    assert (
        token.prefix in response.content.decode() and 'id="new-token"' in response.content.decode()
    )
    assert 'id="new-token"' not in manager_client.get(reverse("flags:tokens")).content.decode()
    manager_client.post(reverse("flags:token_revoke", args=[token.pk]))
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_tokens__evaluation_without_environment__400(stakeholder_client, environments):
    response = stakeholder_client.post(
        reverse("flags:tokens"), {"name": "svc", "scope": "evaluation"}
    )
    assert response.status_code == 400 and "needs an environment" in response.content.decode()
    assert not ApiToken.objects.exists()


def test_tokens__someone_elses__404(stakeholder_client, manager):
    token, _ = services.api_token_create(user=manager, name="mine", scope="user")
    assert (
        stakeholder_client.post(reverse("flags:token_revoke", args=[token.pk])).status_code == 404
    )
    token.refresh_from_db()
    assert token.revoked_at is None
