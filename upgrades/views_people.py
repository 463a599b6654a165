"""The set-up pages for people (administrators): accounts and their roles, invitations, service
accounts and their API tokens; and the one page for people without an account, signing up
through an invitation link. Same shape as views_setup.py: forms parse, services/people.py
decides, a refusal lands on the field it names with its status."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from flags.models import ApiToken
from mycelia_ops.errors import MyceliaError
from mycelia_ops.roles import administrator_required
from upgrades.forms_setup import InviteForm, RolesForm, ServiceAccountForm, SignUpForm, TokenForm
from upgrades.models import Invitation, ServiceAccount, SetupEvent
from upgrades.services import people
from upgrades.views_setup import HISTORY_ON_PAGE, _attempt, _back

# --- people ----------------------------------------------------------------------------------


def _people_context(**forms: Any) -> dict[str, Any]:
    User = get_user_model()
    users = list(
        User.objects.filter(service_account__isnull=True).prefetch_related("groups")
        .order_by("-is_active", "username")
    )  # fmt: skip
    rows = [
        {"user": u, "roles": people.roles_of(u),
         "form": forms.get(f"roles_form_{u.pk}") or RolesForm(
             prefix=f"roles-{u.pk}", initial={"roles": people.roles_of(u)})}
        for u in users
    ]  # fmt: skip
    accounts = list(
        ServiceAccount.objects.select_related("user").prefetch_related(
            Prefetch("user__flag_api_tokens", ApiToken.objects.select_related("environment")),
            "user__groups",
        )
    )
    return {
        "rows": rows,
        "invite_form": forms.get("invite_form") or InviteForm(),
        "invitations": Invitation.objects.select_related("invited_by", "accepted_by")[:50],
        "accounts": [
            {"account": a, "roles": people.roles_of(a.user),
             "tokens": list(a.user.flag_api_tokens.all()),
             "form": forms.get(f"token_form_{a.pk}") or TokenForm(prefix=f"token-{a.pk}")}
            for a in accounts
        ],
        "account_form": forms.get("account_form") or ServiceAccountForm(auto_id="account_%s"),
        "invitation_hours": people.INVITATION_HOURS,
        "new_token": forms.get("new_token"),
        "events": SetupEvent.objects.filter(
            subject__in=["person", "invitation", "service_account", "token"]
        ).select_related("actor")[:HISTORY_ON_PAGE],
    }  # fmt: skip


@require_GET
@administrator_required
def people_list(request: HttpRequest) -> HttpResponse:
    return render(request, "setup/people.html", _people_context())


@require_POST
@administrator_required
def invitation_create(request: HttpRequest) -> HttpResponse:
    form = InviteForm(request.POST)
    status = 400
    if form.is_valid():
        link_template = request.build_absolute_uri(reverse("setup:join", args=["TOKEN"]))
        result, status = _attempt(form, lambda: people.invitation_create(
            email=form.cleaned_data["email"], role=form.cleaned_data["role"], by=request.user,
            link_template=link_template))  # fmt: skip
        if result:
            invitation, _ = result
            messages.success(
                request,
                f"Invitation sent to {invitation.email}; the link works until "
                f"{invitation.expires_at:%d %b %H:%M}.",
            )
            return _back(request, reverse("setup:people"), "invitations")
    return render(request, "setup/people.html", _people_context(invite_form=form), status=status)


@require_POST
@administrator_required
def invitation_revoke(request: HttpRequest, invitation_id: int) -> HttpResponse:
    invitation = get_object_or_404(Invitation, pk=invitation_id)
    if people.invitation_revoke(invitation=invitation, by=request.user):
        messages.success(request, f"The invitation for {invitation.email} is called off.")
    return _back(request, reverse("setup:people"), "invitations")


@require_POST
@administrator_required
def person_roles(request: HttpRequest, user_id: int) -> HttpResponse:
    user = get_object_or_404(get_user_model(), pk=user_id)
    form = RolesForm(request.POST, prefix=f"roles-{user.pk}")
    status = 400
    if form.is_valid():
        _, status = _attempt(form, lambda: people.person_set_roles(
            user=user, roles=form.cleaned_data["roles"], by=request.user))  # fmt: skip
        if status == 200:
            messages.success(request, f"Roles of {user.get_username()} saved.")
            anchor = "service-accounts" if hasattr(user, "service_account") else f"person-{user.pk}"
            return _back(request, reverse("setup:people"), anchor)
    return render(request, "setup/people.html",
                  _people_context(**{f"roles_form_{user.pk}": form}), status=status)  # fmt: skip


@require_POST
@administrator_required
def person_active(request: HttpRequest, user_id: int) -> HttpResponse:
    user = get_object_or_404(get_user_model(), pk=user_id)
    active = request.POST.get("active") == "yes"
    try:
        people.person_set_active(user=user, active=active, by=request.user)
    except MyceliaError as error:
        context = _people_context()
        context["error"] = error.message
        return render(request, "setup/people.html", context, status=error.status)
    messages.success(
        request, f"{user.get_username()} {'reactivated' if active else 'deactivated'}."
    )
    return _back(request, reverse("setup:people"), f"person-{user.pk}")


@require_POST
@administrator_required
def service_account_create(request: HttpRequest) -> HttpResponse:
    # Its ids stay apart from the invite form's on the same page (both have a "role").
    form = ServiceAccountForm(request.POST, auto_id="account_%s")
    status = 400
    if form.is_valid():
        account, status = _attempt(form, lambda: people.service_account_create(
            by=request.user, **form.cleaned_data))  # fmt: skip
        if account:
            messages.success(request, f"Service account {account} created: give it a token.")
            return _back(request, reverse("setup:people"), f"account-{account.pk}")
    return render(request, "setup/people.html", _people_context(account_form=form), status=status)


@require_POST
@administrator_required
def service_token_create(request: HttpRequest, account_id: int) -> HttpResponse:
    account = get_object_or_404(ServiceAccount.objects.select_related("user"), pk=account_id)
    form = TokenForm(request.POST, prefix=f"token-{account.pk}")
    status = 400
    new_token = None
    if form.is_valid():
        result, status = _attempt(form, lambda: people.service_token_create(
            account=account, name=form.cleaned_data["name"], scope=form.cleaned_data["scope"],
            environment_key=form.cleaned_data["environment"], by=request.user))  # fmt: skip
        if result:
            # The plaintext is shown on this one answer and never again (not even in a redirect).
            token, plaintext = result
            new_token = {"token": token, "plaintext": plaintext, "account": account}
            form = None
    context = _people_context(
        new_token=new_token, **({f"token_form_{account.pk}": form} if form else {})
    )
    response = render(request, "setup/people.html", context, status=status)
    response["Cache-Control"] = "no-store"
    return response


@require_POST
@administrator_required
def service_token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    token = get_object_or_404(ApiToken.objects.select_related("user"), pk=token_id,
                              user__service_account__isnull=False)  # fmt: skip
    if people.service_token_revoke(token=token, by=request.user):
        messages.success(request, f"Token “{token.name}” revoked: it no longer works.")
    return _back(request, reverse("setup:people"), "service-accounts")


# --- signing up through an invitation (no account yet) ---------------------------------------


@require_http_methods(["GET", "POST"])
def join(request: HttpRequest, token: str) -> HttpResponse:
    try:
        invitation = people.invitation_for_token(token=token)
    except MyceliaError as error:
        return render(request, "setup/join.html", {"refusal": error.message}, status=error.status)
    form = SignUpForm(request.POST or None)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            user, status = _attempt(form, lambda: people.invitation_accept(
                token=token, username=form.cleaned_data["username"],
                password=form.cleaned_data["password"]))  # fmt: skip
            if user:
                messages.success(request, f"Welcome, {user.get_username()}: sign in to start.")
                return redirect(settings.LOGIN_URL)
    response = render(request, "setup/join.html", {"form": form, "invitation": invitation},
                      status=status)  # fmt: skip
    response["Cache-Control"] = "no-store"
    # The token never leaves in a Referer to another site (no-referrer would make a form post
    # send "Origin: null", which the CSRF check refuses).
    response["Referrer-Policy"] = "same-origin"
    return response
