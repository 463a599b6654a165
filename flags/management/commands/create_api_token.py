"""`manage.py create_api_token USERNAME [--name N] [--scope user|evaluation --env KEY]`:
prints the token alone, so scripts can capture it."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from flags import selectors, services
from flags.exceptions import FlagServiceError
from flags.models import ApiTokenScope


class Command(BaseCommand):
    help = "Create an API token for the flags API or OFREP and print it (shown only once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="command line")
        parser.add_argument("--scope", choices=ApiTokenScope.values, default=ApiTokenScope.USER)
        parser.add_argument("--env", metavar="KEY", help="environment of an evaluation token")

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"Unknown user '{options['username']}'.")
        try:
            environment = selectors.environment_get(key=options["env"]) if options["env"] else None
            _token, plaintext = services.api_token_create(
                user=user, name=options["name"], scope=options["scope"], environment=environment
            )
        except FlagServiceError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(plaintext)
