from __future__ import annotations

app_name = "upgrades"
urlpatterns: list = []
