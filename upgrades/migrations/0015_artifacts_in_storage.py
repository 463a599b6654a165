# Artifacts kept in Django's storage API (STORAGES["artifacts"]): the name they have there.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("upgrades", "0014_environment_hosts_for_ssh"),
    ]

    operations = [
        migrations.AddField(
            model_name="artifact",
            name="storage_name",
            field=models.CharField(blank=True, default="", max_length=1000),
        ),
    ]
