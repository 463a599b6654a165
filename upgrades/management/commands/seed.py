"""Load the playbook, and with --demo a demo Mycelia environment and two demo accounts."""

from __future__ import annotations

import json
import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

from comms import services as comms_services
from flags.demo import demo_flags_seed
from mycelia_ops.roles import ADMINISTRATORS, RELEASE_MANAGERS, STAKEHOLDERS
from upgrades.demo import demo_environment_configure
from upgrades.models import Environment, EnvironmentKind
from upgrades.services import environment_flags_sync, playbook_seed

# Nobody is staff: the Django admin is for superusers only, and the demo needs none of it. The
# administrator sets the product up under /setup/; the manager runs upgrades.
DEMO_ACCOUNTS = (
    ("admin", ADMINISTRATORS),
    ("manager", RELEASE_MANAGERS),
    ("stakeholder", STAKEHOLDERS),
)


class Command(BaseCommand):
    help = "Load the upgrade playbook's templates (and a demo with --demo)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--demo", action="store_true", help="Add a demo environment and logins."
        )
        parser.add_argument(
            "--reset", action="store_true", help="Reload templates over any admin edits."
        )
        parser.add_argument(
            "--demo-url",
            default="http://127.0.0.1:8100",
            help="Base URL of the demo Mycelia target.",
        )

    def handle(self, *args, demo: bool, reset: bool, demo_url: str, **options):
        written = playbook_seed(reset=reset)
        comms_services.comms_seed()
        self.stdout.write(f"Playbook: {written} template(s) loaded.")
        if demo:
            self._seed_demo(demo_url)

    def _seed_demo(self, demo_url: str) -> None:
        """Create what the demo lacks and leave what exists as people set it: `make run` seeds
        on every start, and a restart must not undo an edit. The one exception: when the demo
        target moved to another port, an environment still on the previous demo URL follows."""
        state_dir = settings.DATA_DIR / "demo_target"
        record_file = settings.DATA_DIR / "demo_seed.json"
        record = json.loads(record_file.read_text()) if record_file.exists() else {}
        previous_url = record.get("demo_url")
        for name, slug, kind in (
            ("Demo staging", "staging", EnvironmentKind.STAGING),
            ("Demo production", "production", EnvironmentKind.PRODUCTION),
        ):
            environment, created = Environment.objects.get_or_create(
                slug=slug, defaults={"name": name, "kind": kind, "base_url": demo_url}
            )
            if not created and previous_url and environment.base_url == previous_url != demo_url:
                environment.base_url = demo_url
                environment.save(update_fields=["base_url"])
                self.stdout.write(f"Demo {slug}: base URL moved to {demo_url} with the demo.")
            demo_environment_configure(environment=environment, state_dir=state_dir)
            environment_flags_sync(environment=environment)
        record_file.write_text(json.dumps({**record, "demo_url": demo_url}, indent=2))
        # The demo makes its own passwords once and keeps them beside the database; an account
        # that exists already (its password, staff flag or groups perhaps changed) is left alone.
        credentials_file = settings.DATA_DIR / "demo_logins.json"
        credentials = json.loads(credentials_file.read_text()) if credentials_file.exists() else {}
        User = get_user_model()
        logins: list[str] = []
        for username, group in DEMO_ACCOUNTS:
            user = User.objects.filter(username=username).first()
            if user is None:
                password = credentials.setdefault(username, secrets.token_urlsafe(12))
                user = User(username=username)
                user.set_password(password)
                user.save()
                user.groups.add(Group.objects.get_or_create(name=group)[0])
                logins.append(f"  login {username} / {password}  ({group})")
            elif username in credentials and user.check_password(credentials[username]):
                if user.is_staff and not user.is_superuser:  # made as staff by an older demo
                    User.objects.filter(pk=user.pk).update(is_staff=False)
                logins.append(f"  login {username} / {credentials[username]}  ({group})")
            elif username in credentials:
                logins.append(f"  login {username} (password changed since the demo made it)")
            else:
                logins.append(f"  login {username} (an account the demo did not make)")
        credentials_file.write_text(json.dumps(credentials, indent=2))
        credentials_file.chmod(0o600)
        created = demo_flags_seed(by=None)
        channels = comms_services.comms_demo_seed()
        self.stdout.write("Demo environments: staging, production → " + demo_url)
        if channels:
            self.stdout.write("Demo message channels: " + ", ".join(channels))
        if created:
            self.stdout.write("Demo flags: " + ", ".join(created))
        for line in logins:
            self.stdout.write(line)
