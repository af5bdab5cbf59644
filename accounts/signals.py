"""Keeps the authentication cache (``accounts.auth_cache``) consistent with the database."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from accounts import auth_cache
from accounts.models import ApiKey, Membership, Organization, User


def _key_prefixes(**filters) -> list[str]:
    return list(ApiKey.objects.filter(**filters).values_list("prefix", flat=True))


@receiver([post_save, post_delete], sender=ApiKey)
def api_key_changed(sender, instance: ApiKey, **kwargs):
    auth_cache.forget(api_key_prefixes=[instance.prefix])


@receiver([post_save, post_delete], sender=Membership)
def membership_changed(sender, instance: Membership, **kwargs):
    prefixes = _key_prefixes(created_by_id=instance.user_id, organization_id=instance.organization_id)
    auth_cache.forget(user_ids=[instance.user_id], api_key_prefixes=prefixes)


@receiver([post_save, post_delete], sender=User)
def user_changed(sender, instance: User, created=False, **kwargs):
    if not created:
        auth_cache.forget(user_ids=[instance.pk], api_key_prefixes=_key_prefixes(created_by_id=instance.pk))


@receiver([post_save, post_delete], sender=Organization)
def organization_changed(sender, instance: Organization, created=False, **kwargs):
    if not created:
        user_ids = Membership.objects.filter(organization_id=instance.pk).values_list("user_id", flat=True)
        auth_cache.forget(user_ids=list(user_ids), api_key_prefixes=_key_prefixes(organization_id=instance.pk))
