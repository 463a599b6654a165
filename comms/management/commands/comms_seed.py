from __future__ import annotations

from django.core.management.base import BaseCommand

from comms import services


class Command(BaseCommand):
    help = "Create the audiences, message templates and subscribers' channel (idempotent)."

    def handle(self, *args, **options) -> None:
        created = services.comms_seed()
        summary = ", ".join(f"{count} {what}" for what, count in created.items())
        self.stdout.write(self.style.SUCCESS(f"Communications seeded: {summary} created."))
