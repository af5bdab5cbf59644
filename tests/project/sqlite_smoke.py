"""Run by test_sqlite.py in a fresh interpreter with DATABASE_URL=sqlite:///...: the
`make run` configuration (SQLite, shared by web and worker) must work end to end."""

import json
import sys

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402
from rest_framework_simplejwt.tokens import RefreshToken  # noqa: E402

from accounts.models import Organization, User  # noqa: E402

call_command("migrate", "--noinput", verbosity=0)
call_command("bootstrap_demo", "--force", stdout=sys.stderr)
call_command("bootstrap_demo", "--force", stdout=sys.stderr)  # idempotent
key = json.loads((django.conf.settings.VAR_DIR / "demo-credentials.json").read_text())["api_key"]
admin, demo = User.objects.get(username="admin"), Organization.objects.get(slug="demo")
access = RefreshToken.for_user(admin).access_token

results = {}
by_key = Client(HTTP_X_API_KEY=key)
results["me_key"] = by_key.get("/api/v1/auth/me").json()["organization"]["slug"]
results["me_key_cached"] = by_key.get("/api/v1/auth/me").status_code
for ref in (str(demo.id), "demo"):
    by_jwt = Client(HTTP_AUTHORIZATION=f"Bearer {access}", HTTP_X_ORGANIZATION=ref)
    results[f"me_jwt_{ref == 'demo' and 'slug' or 'id'}"] = by_jwt.get("/api/v1/auth/me").json()["role"]
created = by_key.post("/api/v1/auth/api-keys", {"name": "x", "scopes": ["jobs:read"]}, content_type="application/json")
results["create_key"] = created.status_code
results["list_keys"] = by_key.get("/api/v1/auth/api-keys").json()["total"]
results["revoke"] = by_key.delete(f"/api/v1/auth/api-keys/{created.json()['id']}").status_code
results["revoked_key"] = Client(HTTP_X_API_KEY=created.json()["key"]).get("/api/v1/auth/me").status_code
results["ready"] = Client().get("/health/ready").status_code

from rq import Queue  # noqa: E402

from jobs.worker import Worker  # noqa: E402
from pipeline_project.lib.redis import get_redis  # noqa: E402

text = {"source_type": "text", "text": "Ceci est un petit document en français."}
job = by_key.post("/api/v1/jobs", text, content_type="application/json").json()
Worker([Queue("default", connection=get_redis())], connection=get_redis()).work(burst=True, with_scheduler=False)
done = by_key.get(f"/api/v1/jobs/{job['id']}").json()
results["job"] = [
    done["status"],
    by_key.get(f"/api/v1/jobs/{job['id']}/result").json()["metadata"]["files"][0]["language"]["language"],
]
staff = Client()  # the back-office on SQLite: the dashboard's hourly grouping (TruncHour), the jobs list
staff.force_login(admin)
for url in ("/admin/dashboard/", "/admin/jobs/job/", f"/admin/jobs/job/{job['id']}/change/"):
    page = staff.get(url)
    assert page.status_code == 200, url
    assert url != "/admin/dashboard/" or b'<rect class="bar-completed"' in page.content, "no bar in the chart"
print(json.dumps(results))
