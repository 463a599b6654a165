"""The lifecycle from a terminal: the same table and services as the page and the API.

python manage.py upgrade 12                      # state, next action, what is allowed
python manage.py upgrade 12 deploy --as alice
python manage.py upgrade 12 mark_failed --as alice --reason "build broken"
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from mycelia_ops.errors import MyceliaError
from upgrades import selectors, services
from upgrades.models import Action, Upgrade, lifecycle


class Command(BaseCommand):
    help = "Show an upgrade's allowed actions, or carry one out (refused with the reason)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("upgrade_id", type=int)
        parser.add_argument("action", nargs="?", choices=Action.values)
        parser.add_argument("--as", dest="username", help="the release manager acting")
        parser.add_argument("--reason", default="")
        parser.add_argument("--override-reason", default="")
        parser.add_argument("--backup-id", type=int)
        parser.add_argument("--hours", type=float)
        parser.add_argument("--decision", choices=["go", "no_go"], default="")

    def handle(self, *args, upgrade_id: int, action: str | None, username: str | None, **opts):
        upgrade = Upgrade.objects.filter(pk=upgrade_id).first()
        if upgrade is None:
            raise CommandError(f"There is no upgrade #{upgrade_id}.")
        user = None
        if username:
            user = get_user_model().objects.filter(username=username).first()
            if user is None:
                raise CommandError(f"There is no user “{username}”.")
        if action is None:
            self._show(upgrade, user)
            return
        if user is None:
            raise CommandError("Say who acts: --as USERNAME (a release manager).")
        try:
            acted = services.upgrade_act(
                upgrade=upgrade, action=action, by=user, reason=opts["reason"],
                override_reason=opts["override_reason"], backup_id=opts["backup_id"],
                hours=opts["hours"], decision=opts["decision"],
            )  # fmt: skip
        except MyceliaError as refusal:
            raise CommandError(f"{refusal.message} (HTTP {refusal.status})") from None
        self.stdout.write(acted.message)
        if acted.run is not None:
            self.stdout.write(f"Run #{acted.run.pk} queued: {acted.run.title}")

    def _show(self, upgrade: Upgrade, user) -> None:
        facts = selectors.lifecycle_facts(upgrade, actor=user)
        self.stdout.write(f"#{upgrade.pk} {upgrade.title}: {upgrade.get_status_display()}")
        following = lifecycle.next_action(facts)
        if following:
            self.stdout.write(f"Next: {Action(following[0]).label} ({following[1]})")
        for action, verdict in lifecycle.verdicts(facts).items():
            mark = "yes" if verdict.allowed else "no "
            why = "" if verdict.allowed else f" ({verdict.why})"
            self.stdout.write(f"  {mark} {action}{why}")
