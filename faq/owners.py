"""
Shop owners: which shops a signed-in user may see and change in the admin.

A superuser sees every shop. A staff user who is one of a shop's `owners` sees only those shops,
and, through `ShopScopedAdmin`, only the rows that belong to them: lists, change pages, actions,
form choices and filters. An object of another shop is a 404, exactly like one that does not exist,
so ids cannot be probed. `owners_group()` is the group `manage.py create_owner` puts them in.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import ImproperlyConfigured
from django.db.models import QuerySet
from django.http import Http404

from faq.models import Shop

OWNERS_GROUP = "Shop owners"

# What an owner needs in the admin: their shop's settings, their FAQ, and their conversations.
OWNER_PERMISSIONS = [
    ("faq", "view_shop"),
    ("faq", "change_shop"),
    ("faq", "add_faqentry"),
    ("faq", "change_faqentry"),
    ("faq", "delete_faqentry"),
    ("faq", "view_faqentry"),
    ("widget", "view_conversation"),
    ("widget", "view_message"),
]


def owners_group() -> Group:
    """The "Shop owners" group with exactly the permissions an owner needs (created on demand)."""
    group, _ = Group.objects.get_or_create(name=OWNERS_GROUP)
    wanted = []
    for app_label, codename in OWNER_PERMISSIONS:
        try:
            wanted.append(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        except Permission.DoesNotExist:
            raise ImproperlyConfigured(
                f"Permission {app_label}.{codename} does not exist; run `manage.py migrate` first."
            ) from None
    group.permissions.add(*wanted)
    return group


def shops_for(user) -> QuerySet[Shop]:
    """The shops this user may manage: all for a superuser, their own for a staff owner."""
    if not (user and user.is_authenticated and user.is_active):
        return Shop.objects.none()
    if user.is_superuser:
        return Shop.objects.all()
    if not user.is_staff:
        return Shop.objects.none()
    return Shop.objects.filter(owners=user)


def owns(user, shop: Shop | int) -> bool:
    shop_id = shop.pk if isinstance(shop, Shop) else shop
    return shops_for(user).filter(pk=shop_id).exists()


class ShopScopedAdmin(admin.ModelAdmin):
    """A ModelAdmin that shows a staff owner only the rows of their own shops.

    `shop_field` is the lookup path from the model to its Shop ("shop", "conversation__shop");
    None means the model is Shop itself. Superusers are not restricted.
    """

    shop_field: str | None = "shop"

    def scope(self, request, queryset: QuerySet) -> QuerySet:
        if request.user.is_superuser:
            return queryset
        shops = shops_for(request.user)
        if self.shop_field is None:
            return queryset.filter(pk__in=shops.values("pk"))
        return queryset.filter(**{f"{self.shop_field}__in": shops.values("pk")})

    def get_queryset(self, request) -> QuerySet:
        return self.scope(request, super().get_queryset(request))

    def get_object(self, request, object_id, from_field=None):
        # Django's admin redirects to the index for an object it cannot find; another shop's
        # object must look exactly like a missing one, and a 404 says so honestly.
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404(f"No {self.opts.verbose_name} with id {object_id!r}.")
        return obj

    def _related_queryset(self, request, model) -> QuerySet | None:
        """Scoped choices for a relation to `model`, or None to leave Django's default."""
        if request.user.is_superuser:
            return None
        if model is Shop:
            return shops_for(request.user)
        if not self.admin_site.is_registered(model):
            return None
        related_admin = self.admin_site.get_model_admin(model)
        if isinstance(related_admin, ShopScopedAdmin):
            return related_admin.get_queryset(request)
        return None

    def _scoped(self, db_field, request, kwargs: dict) -> dict:
        """The formfield kwargs with the scoped queryset, unless the caller gave one."""
        if "queryset" not in kwargs:
            queryset = self._related_queryset(request, db_field.related_model)
            if queryset is not None:
                kwargs["queryset"] = queryset
        return kwargs

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        kwargs = self._scoped(db_field, request, kwargs)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        kwargs = self._scoped(db_field, request, kwargs)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def get_list_filter(self, request):
        # A plain relation filter lists every shop in the database; only offer the shops that
        # appear in this user's rows.
        filters = []
        for item in super().get_list_filter(request):
            if isinstance(item, str) and item == self.shop_field:
                filters.append((item, admin.RelatedOnlyFieldListFilter))
            else:
                filters.append(item)
        return filters
