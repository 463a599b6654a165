"""The default flag environment (settings.FLAGS_DEFAULT_ENVIRONMENT, "production" unless set)
exists from the migrations, so the playbook's curl and OFREP answer on a bare install. Every
flag gets its (off) state there; the revision changes so evaluating processes reload."""

import secrets

from django.conf import settings
from django.db import migrations


def default_environment_create(apps, schema_editor):
    FlagEnvironment = apps.get_model("flags", "FlagEnvironment")
    Flag = apps.get_model("flags", "Flag")
    FlagState = apps.get_model("flags", "FlagState")
    FlagRevision = apps.get_model("flags", "FlagRevision")
    key = getattr(settings, "FLAGS_DEFAULT_ENVIRONMENT", "production")
    environment, created = FlagEnvironment.objects.get_or_create(
        key=key, defaults={"name": key.replace("-", " ").replace("_", " ").capitalize()}
    )
    if not created:
        return
    FlagState.objects.bulk_create(
        [FlagState(flag=flag, environment=environment) for flag in Flag.objects.all()],
        ignore_conflicts=True,
    )
    if not FlagRevision.objects.filter(pk=1).update(revision=secrets.token_hex(8)):
        FlagRevision.objects.create(pk=1, revision=secrets.token_hex(8))


class Migration(migrations.Migration):
    dependencies = [("flags", "0003_flag_event_source")]

    operations = [
        # Nothing to undo: an environment someone may use by now is not removed.
        migrations.RunPython(default_environment_create, migrations.RunPython.noop),
    ]
