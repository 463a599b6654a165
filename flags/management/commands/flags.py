"""The playbook's flag CLI: `manage.py flags --enable NAME [--env ENV] [--reason TEXT]`."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from flags import selectors, services
from flags.api.management import default_environment_key
from flags.exceptions import FlagServiceError
from flags.models import FlagEnvironment, Via

HISTORY_SHOWN = 10


class Command(BaseCommand):
    help = "List, show, create, enable and disable feature flags."

    def add_arguments(self, parser: CommandParser) -> None:
        action = parser.add_mutually_exclusive_group(required=True)
        action.add_argument("--enable", metavar="NAME", help="turn the flag on")
        action.add_argument("--disable", metavar="NAME", help="turn the flag off")
        action.add_argument("--create", metavar="NAME", help="create a flag (off everywhere)")
        action.add_argument("--list", action="store_true", help="list live flags and states")
        action.add_argument("--show", metavar="NAME", help="states per environment and history")
        parser.add_argument(
            "--env",
            metavar="ENV",
            help="environment key (default: the setting FLAGS_DEFAULT_ENVIRONMENT)",
        )
        parser.add_argument("--reason", default="", help="why; kept in the flag's history")
        parser.add_argument("--description", default="", help="with --create")
        parser.add_argument("--user", metavar="USERNAME", help="who is acting (default: nobody)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["list"]:
                self._list()
            elif options["show"]:
                self._show(options["show"])
            elif options["create"]:
                flag = services.flag_create(
                    key=options["create"],
                    description=options["description"],
                    by=self._actor(options["user"]),
                    via=Via.CLI,
                )
                self.stdout.write(f"Created {flag.key} (off in every environment).")
            else:
                self._set(options)
        except FlagServiceError as exc:
            raise CommandError(str(exc)) from exc

    def _actor(self, username: str | None) -> Any:
        if not username:
            return None
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"Unknown user '{username}'.")
        return user

    def _set(self, options: dict[str, Any]) -> None:
        on = bool(options["enable"])
        name = options["enable"] or options["disable"]
        actor = self._actor(options["user"])
        flag = selectors.flag_get(key=name)
        environment = selectors.environment_get(key=options["env"] or default_environment_key())
        change = services.flag_set_state(
            flag=flag,
            environment=environment,
            on=on,
            by=actor,
            via=Via.CLI,
            reason=options["reason"],
        )
        word = "on" if on else "off"
        if change.changed:
            self.stdout.write(
                f"{flag.key} is now {word} in {environment.key} (version {change.state.version})."
            )
        else:
            self.stdout.write(
                f"{flag.key} was already {word} in {environment.key}; nothing changed."
            )

    def _list(self) -> None:
        environments = list(FlagEnvironment.objects.all())
        flags = list(selectors.flag_list())
        if not flags:
            self.stdout.write("No flags yet. Create one with --create NAME.")
            return
        width = max(len(f.key) for f in flags)
        self.stdout.write("FLAG".ljust(width) + "  " + "  ".join(e.key for e in environments))
        for flag in flags:
            states = {s.environment_id: s for s in flag.states.all()}
            cells = [
                ("on" if states[e.pk].enabled else "off").ljust(len(e.key))
                if e.pk in states
                else "-"
                for e in environments
            ]
            self.stdout.write(flag.key.ljust(width) + "  " + "  ".join(cells))

    def _show(self, name: str) -> None:
        flag = selectors.flag_get(key=name)
        self.stdout.write(f"{flag.key}{' (archived)' if flag.is_archived else ''}")
        if flag.description:
            self.stdout.write(f"  {flag.description}")
        if flag.tags:
            self.stdout.write(f"  tags: {', '.join(flag.tag_list)}")
        for state in flag.states.select_related("environment").order_by("environment_id"):
            rollout = (
                f", rollout {state.rollout_percentage}%" if state.rollout_percentage < 100 else ""
            )
            rules = f", {len(state.rules)} rule(s)" if state.rules else ""
            self.stdout.write(
                f"  {state.environment.key}: {'on' if state.enabled else 'off'}{rollout}{rules} (version {state.version})"
            )
        self.stdout.write("History (newest first):")
        for event in flag.events.select_related("environment", "actor")[:HISTORY_SHOWN]:
            who = event.actor.get_username() if event.actor else event.via
            where = f" in {event.environment.key}" if event.environment else ""
            why = f" — {event.reason}" if event.reason else ""
            self.stdout.write(
                f"  {event.at:%Y-%m-%d %H:%M:%S} {event.get_kind_display()}{where} by {who} via {event.via}{why}"
            )
