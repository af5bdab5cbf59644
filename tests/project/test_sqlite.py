import json
import os
import subprocess
import sys
from pathlib import Path


def test_the_make_run_configuration_works_on_sqlite(tmp_path):
    """`make run` uses SQLite: migrations, the demo bootstrap, authentication and a job run by our
    worker class work on it."""
    environment = {
        **os.environ,
        "DEBUG": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "VAR_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "pipeline_project.settings",
        "ALLOWED_HOSTS": "testserver",
    }
    result = subprocess.run(
        [sys.executable, "-m", "tests.project.sqlite_smoke"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "me_key": "demo",
        "me_key_cached": 200,
        "me_jwt_id": "admin",
        "me_jwt_slug": "admin",
        "create_key": 201,
        "list_keys": 2,
        "revoke": 204,
        "revoked_key": 401,
        "ready": 200,
        "job": ["completed", "fr"],
    }
