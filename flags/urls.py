from __future__ import annotations

app_name = "flags"
urlpatterns: list = []
