"""`python manage.py diagnose`: the control panel's components, one line each; exit 1 when any
is failing (2 with --strict when one only warns)."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from mycelia_ops.health import FAILING, OK, ops_status_collect


class Command(BaseCommand):
    help = "Check the database, broker, workers, scheduler and registered components."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true", help="Print the JSON document.")

    def handle(self, *args, **options) -> None:
        report = ops_status_collect(include_web=False)
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2, default=str))
        else:
            for name, component in report["components"].items():
                status = component["status"]
                style = {OK: self.style.SUCCESS, FAILING: self.style.ERROR}.get(
                    status, self.style.WARNING
                )
                detail = component.get("error") or _figures(component)
                self.stdout.write(f"{style(status.upper().ljust(8))} {name.ljust(12)} {detail}")
        if report["status"] != OK:
            failing = [n for n, c in report["components"].items() if c["status"] != OK]
            raise CommandError(f"Not healthy: {', '.join(failing)}", returncode=1)
        self.stdout.write(self.style.SUCCESS("All components healthy."))


def _figures(component: dict) -> str:
    skip = {"status", "workers"}
    parts = [f"{k}={v}" for k, v in component.items() if k not in skip]
    if "workers" in component:
        parts.append("workers=" + ",".join(w["name"] for w in component["workers"] if w["alive"]))
    return " ".join(parts)
