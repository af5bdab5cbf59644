"""Create the demo organization, admin user and API key (idempotent) and print them.

Used by ``make run``. The generated password and key are kept in
``$VAR_DIR/demo-credentials.json`` (mode 0600, development only) so every run
prints the same working credentials.
"""

import json
import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils.crypto import get_random_string

from accounts.models import ApiKey, Membership, Organization, User
from accounts.principal import Principal
from accounts.roles import ALL_PERMISSIONS, Role
from accounts.services import api_key_create, membership_create, organization_create

USERNAME = "admin"
ORG_SLUG = "demo"


class Command(BaseCommand):
    help = "Create the demo organization, admin user and API key if missing, and print them."

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default=f"http://127.0.0.1:{os.environ.get('WEB_PORT', '8000')}")
        parser.add_argument("--force", action="store_true", help="Allow running with DEBUG off.")

    def handle(self, *args, base_url, force, **options):
        if not settings.DEBUG and not force:
            raise CommandError("bootstrap_demo creates a superuser with a printed password: DEBUG only (or --force).")
        path = settings.VAR_DIR / "demo-credentials.json"
        stored = json.loads(path.read_text()) if path.exists() else {}
        with transaction.atomic():
            user, password = self._user(stored.get("password"))
            organization = self._organization(user)
            key = self._api_key(user, organization, stored.get("api_key"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"password": password, "api_key": key}))
        path.chmod(0o600)
        self.stdout.write(
            "\n".join(
                [
                    "",
                    self.style.SUCCESS("Demo environment ready"),
                    f"  API        {base_url}/api/v1/   (docs {base_url}/api/docs/)",
                    f"  Admin      {base_url}/admin/   user {USERNAME} / {password or '(changed; not shown)'}",
                    f"  Org        {organization.name} ({organization.slug})",
                    f"  API key    {key}",
                    f'  Try        curl -H "X-API-Key: {key}" {base_url}/api/v1/auth/me',
                    "",
                ]
            )
        )

    def _user(self, password: str | None) -> tuple[User, str | None]:
        user = User.objects.filter(username=USERNAME).first()
        if user is None:
            password = password or get_random_string(16)
            return User.objects.create_superuser(USERNAME, "admin@example.com", password), password
        return user, password if password and user.check_password(password) else None

    def _organization(self, user: User) -> Organization:
        organization = Organization.objects.filter(slug=ORG_SLUG).first()
        if organization is None:
            return organization_create(name="Demo", slug=ORG_SLUG, owner=user)
        if not Membership.objects.filter(user=user, organization=organization).exists():
            membership_create(user=user, organization=organization, role=Role.ADMIN)
        return organization

    def _api_key(self, user: User, organization: Organization, key: str | None) -> str:
        if key:
            existing = ApiKey.objects.usable().filter(prefix=ApiKey.prefix_of(key), organization=organization).first()
            if existing is not None and existing.matches(key):
                return key
        principal = Principal(
            user=user, organization=organization, role=Role.ADMIN, permissions=frozenset(ALL_PERMISSIONS)
        )
        return api_key_create(principal=principal, name="demo")[1]
