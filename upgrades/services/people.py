"""People: invitations by email (a sign-up link that expires), roles, deactivation, and service
accounts whose API tokens pipelines use. Administrators only (the views check the role); every
change writes a SetupEvent, never a token or a password."""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from flags import services as flag_services
from flags.exceptions import FlagServiceError
from flags.models import ApiToken, ApiTokenScope, FlagEnvironment
from mycelia_ops.errors import BadInput, Conflict, MyceliaError, NotFound
from mycelia_ops.roles import ADMINISTRATORS, RELEASE_MANAGERS, ROLE_GROUPS, STAKEHOLDERS
from upgrades.models import Invitation, InvitedRole, ServiceAccount, SetupSubject
from upgrades.services.setup import setup_record

logger = logging.getLogger(__name__)

INVITATION_HOURS = getattr(settings, "MYCELIA_INVITATION_HOURS", 72)
GROUP_OF_ROLE = {
    InvitedRole.ADMINISTRATOR: ADMINISTRATORS,
    InvitedRole.RELEASE_MANAGER: RELEASE_MANAGERS,
    InvitedRole.STAKEHOLDER: STAKEHOLDERS,
}
ROLE_OF_GROUP = {group: role for role, group in GROUP_OF_ROLE.items()}


class LinkGone(MyceliaError):
    """A sign-up link that expired, was used or was called off (410)."""

    status = 410


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def roles_of(user: Any) -> list[str]:
    """The user's roles (InvitedRole values), administrator first; superusers are administrators."""
    names = {g.name for g in user.groups.all()}
    roles = [role for role, group in GROUP_OF_ROLE.items() if group in names]
    if user.is_superuser and InvitedRole.ADMINISTRATOR not in roles:
        roles.insert(0, InvitedRole.ADMINISTRATOR)
    return roles


def _active_administrators() -> Any:
    return (
        get_user_model()
        .objects.filter(Q(is_superuser=True) | Q(groups__name=ADMINISTRATORS), is_active=True)
        .distinct()
    )


# --- invitations -----------------------------------------------------------------------------


def invitation_create(
    *, email: str, role: str, by: Any, link_template: str
) -> tuple[Invitation, str]:
    """Invite `email` to sign up with `role`; the mail carries `link_template` with TOKEN
    replaced by the token, which works once within INVITATION_HOURS. Returns the invitation
    and the link."""
    email = (email or "").strip()
    try:
        validate_email(email)
    except ValidationError:
        raise BadInput(f"“{email}” is not an email address.", field="email") from None
    if role not in InvitedRole.values:
        raise BadInput("Choose the role the person will have.", field="role")
    User = get_user_model()
    if User.objects.filter(email__iexact=email, is_active=True).exists():
        raise BadInput(
            f"{email} has an account already: change its roles below instead.", field="email"
        )
    token = secrets.token_urlsafe(32)
    now = timezone.now()
    with transaction.atomic():
        invitation = Invitation.objects.create(
            email=email,
            role=role,
            token_hash=_hash(token),
            invited_by=by,
            created_at=now,
            expires_at=now + timedelta(hours=INVITATION_HOURS),
        )
        setup_record(by=by, subject=SetupSubject.INVITATION, obj=invitation, label=email,
                     verb="invited", changes=[("role", "", invitation.get_role_display())])  # fmt: skip
    link = link_template.replace("TOKEN", token)
    # Mail goes out after the row exists and outside the transaction; a mail server that is
    # down leaves the invitation, whose link the administrator can still pass on by hand.
    try:
        send_mail(
            subject="You are invited to Mycelia Ops",
            message=(
                f"{by.get_username()} invites you to Mycelia Ops as "
                f"{invitation.get_role_display().lower()}.\n\n"
                f"Choose a username and a password here:\n{link}\n\n"
                f"The link works once, until {invitation.expires_at:%d %b %Y %H:%M %Z}."
            ),
            from_email=None,
            recipient_list=[email],
        )
    except OSError as error:
        logger.warning("Invitation mail to %s not sent: %s", email, error)
        raise Conflict(
            f"The invitation exists but the mail could not be sent ({error}); pass this link "
            f"on yourself: {link}"
        ) from None
    return invitation, link


def invitation_revoke(*, invitation: Invitation, by: Any) -> bool:
    with transaction.atomic():
        done = Invitation.objects.filter(
            pk=invitation.pk, accepted_at__isnull=True, revoked_at__isnull=True
        ).update(revoked_at=timezone.now())
        if done:
            setup_record(by=by, subject=SetupSubject.INVITATION, obj=invitation,
                         label=invitation.email, verb="called off")  # fmt: skip
    return bool(done)


def invitation_for_token(*, token: str) -> Invitation:
    """The invitation a link names, while it still works; else a 404 or a 410 saying why."""
    invitation = (
        Invitation.objects.select_related("invited_by").filter(token_hash=_hash(token)).first()
    )
    if invitation is None:
        raise NotFound("This sign-up link is not one Mycelia Ops made. Check the address.")
    state = invitation.state()
    who = invitation.invited_by.get_username() if invitation.invited_by else "an administrator"
    if state == "expired":
        raise LinkGone(
            f"This sign-up link expired on {invitation.expires_at:%d %b %Y %H:%M %Z}. "
            f"Ask {who} to invite you again."
        )
    if state == "accepted":
        raise LinkGone("This sign-up link has been used. Sign in with the account it made.")
    if state == "called_off":
        raise LinkGone(f"This invitation was called off. Ask {who} if you still need access.")
    return invitation


def invitation_accept(*, token: str, username: str, password: str) -> Any:
    """Make the invitee's account from a link that still works (once: a second use is a 410)."""
    invitation = invitation_for_token(token=token)
    username = (username or "").strip()
    User = get_user_model()
    try:
        UnicodeUsernameValidator()(username)
    except ValidationError:
        raise BadInput(
            "A username is letters, digits and @ . + - _ only, e.g. “ana.lopez”.",
            field="username",
        ) from None
    if not username or len(username) > 150:
        raise BadInput("Choose a username of up to 150 characters.", field="username")
    if User.objects.filter(username__iexact=username).exists():
        raise BadInput(f"The username “{username}” is taken; choose another.", field="username")
    candidate = User(username=username, email=invitation.email)
    try:
        validate_password(password or "", user=candidate)
    except ValidationError as error:
        raise BadInput(" ".join(error.messages), field="password") from None
    with transaction.atomic():
        claimed = Invitation.objects.filter(
            pk=invitation.pk,
            accepted_at__isnull=True,
            revoked_at__isnull=True,
            expires_at__gt=timezone.now(),
        ).update(accepted_at=timezone.now())
        if not claimed:
            raise LinkGone("This sign-up link has just been used or has expired.")
        user = User.objects.create_user(username=username, email=invitation.email,
                                        password=password)  # fmt: skip
        user.groups.add(Group.objects.get_or_create(name=GROUP_OF_ROLE[invitation.role])[0])
        Invitation.objects.filter(pk=invitation.pk).update(accepted_by=user)
        setup_record(by=user, subject=SetupSubject.PERSON, obj=user, label=username,
                     verb="signed up", changes=[("role", "", invitation.get_role_display())])  # fmt: skip
    return user


# --- roles and deactivation ------------------------------------------------------------------


def _labels(roles: Iterable[str]) -> str:
    return ", ".join(InvitedRole(r).label for r in roles) or "none"


def person_set_roles(*, user: Any, roles: Iterable[str], by: Any) -> None:
    """Give `user` exactly these roles. At least one active administrator always remains."""
    wanted = list(dict.fromkeys(roles))
    bad = [r for r in wanted if r not in InvitedRole.values]
    if bad:
        raise BadInput(f"Unknown role “{bad[0]}”.", field="roles")
    wanted = [role for role in InvitedRole.values if role in wanted]  # administrator first
    if user.is_superuser and InvitedRole.ADMINISTRATOR not in wanted:
        raise BadInput(
            f"{user.get_username()} is a superuser, and so always an administrator.",
            field="roles",
        )
    if hasattr(user, "service_account") and InvitedRole.ADMINISTRATOR in wanted:
        raise BadInput("A service account cannot be an administrator.", field="roles")
    before = roles_of(user)
    if set(before) == set(wanted):
        return
    with transaction.atomic():
        groups = {g.name: g for g in Group.objects.filter(name__in=ROLE_GROUPS)}
        for role, name in GROUP_OF_ROLE.items():
            group = groups.get(name) or Group.objects.create(name=name)
            if role in wanted:
                user.groups.add(group)
            else:
                user.groups.remove(group)
        if not _active_administrators().exists():
            transaction.set_rollback(True)
            raise Conflict("Someone must stay an administrator: make another one first.")
        setup_record(by=by, subject=SetupSubject.PERSON, obj=user, label=user.get_username(),
                     verb="changed", changes=[("roles", _labels(before), _labels(wanted))])  # fmt: skip
    user.__dict__.pop("_mycelia_groups", None)


def person_set_active(*, user: Any, active: bool, by: Any) -> None:
    """Deactivate (no sign-in, no API token works) or reactivate an account."""
    if user.is_active == active:
        return
    if not active and user.pk == getattr(by, "pk", None):
        raise Conflict("You cannot deactivate yourself; ask another administrator.")
    with transaction.atomic():
        type(user).objects.filter(pk=user.pk).update(is_active=active)
        user.is_active = active
        if not _active_administrators().exists():
            transaction.set_rollback(True)
            raise Conflict("Someone must stay an administrator: make another one first.")
        setup_record(by=by, subject=SetupSubject.PERSON, obj=user, label=user.get_username(),
                     verb="reactivated" if active else "deactivated")  # fmt: skip


# --- service accounts ------------------------------------------------------------------------


def service_account_create(
    *, username: str, role: str, description: str, by: Any
) -> ServiceAccount:
    """A user that cannot sign in (no password), in a role, for a pipeline's API tokens."""
    username = (username or "").strip()
    try:
        UnicodeUsernameValidator()(username)
    except ValidationError:
        raise BadInput("A name is letters, digits and @ . + - _ only, e.g. “ci-pipeline”.",
                       field="username") from None  # fmt: skip
    if not username or len(username) > 150:
        raise BadInput("Name the account, e.g. “ci-pipeline”.", field="username")
    if role not in (InvitedRole.RELEASE_MANAGER, InvitedRole.STAKEHOLDER):
        raise BadInput(
            "A service account is a release manager (may act) or a stakeholder (reads only).",
            field="role",
        )
    User = get_user_model()
    if User.objects.filter(username__iexact=username).exists():
        raise BadInput(f"The name “{username}” is taken.", field="username")
    with transaction.atomic():
        user = User(username=username)
        user.set_unusable_password()
        user.save()
        user.groups.add(Group.objects.get_or_create(name=GROUP_OF_ROLE[role])[0])
        account = ServiceAccount.objects.create(
            user=user, description=(description or "").strip()[:300], created_by=by
        )
        setup_record(by=by, subject=SetupSubject.SERVICE_ACCOUNT, obj=account, label=username,
                     verb="created", changes=[("role", "", InvitedRole(role).label)])  # fmt: skip
    return account


def service_token_create(
    *, account: ServiceAccount, name: str, scope: str, environment_key: str, by: Any
) -> tuple[ApiToken, str]:
    """A token for the account (the flags app's tokens): "user" acts as the account with its
    role; "evaluation" only evaluates flags in one environment. The plaintext is shown once."""
    environment = None
    if scope == ApiTokenScope.EVALUATION:
        environment = FlagEnvironment.objects.filter(key=environment_key).first()
        if environment is None:
            raise BadInput("Choose the flag environment an evaluation token reads.",
                           field="environment")  # fmt: skip
    try:
        with transaction.atomic():
            token, plaintext = flag_services.api_token_create(
                user=account.user, name=name, scope=scope, environment=environment
            )
            setup_record(by=by, subject=SetupSubject.TOKEN, obj=token,
                         label=f"{account.user.get_username()} · {token.name} ({token.prefix}…)",
                         verb="created",
                         changes=[("scope", "", token.get_scope_display())])  # fmt: skip
    except FlagServiceError as error:
        field = "name" if "name" in str(error) else "scope"
        raise BadInput(str(error), field=field) from None
    return token, plaintext


def service_token_revoke(*, token: ApiToken, by: Any) -> bool:
    with transaction.atomic():
        done = flag_services.api_token_revoke(token=token)
        if done:
            setup_record(by=by, subject=SetupSubject.TOKEN, obj=token,
                         label=f"{token.user.get_username()} · {token.name} ({token.prefix}…)",
                         verb="revoked")  # fmt: skip
    return done
