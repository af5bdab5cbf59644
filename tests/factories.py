import factory

from accounts.models import ApiKey, Membership, Organization, User
from accounts.roles import ALL_PERMISSIONS, Role

PASSWORD = "correct-horse-battery"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password(PASSWORD)


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Org {n}")
    slug = factory.Sequence(lambda n: f"org-{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    organization = factory.SubFactory(OrganizationFactory)
    role = Role.MEMBER
    is_default = True


class ApiKeyFactory(factory.django.DjangoModelFactory):
    """Builds a key the way the service does; the full key is on ``.raw_key``."""

    class Meta:
        model = ApiKey

    organization = factory.SubFactory(OrganizationFactory)
    created_by = factory.SubFactory(UserFactory)
    name = factory.Sequence(lambda n: f"key {n}")
    scopes = factory.LazyFunction(lambda: list(ALL_PERMISSIONS))

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        prefix, raw_key = ApiKey.generate()
        api_key = model_class.objects.create(*args, prefix=prefix, key_hash=ApiKey.hash_key(raw_key), **kwargs)
        api_key.raw_key = raw_key
        return api_key
